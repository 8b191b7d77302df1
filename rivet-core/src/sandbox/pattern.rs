//! A Lua 5.4 pattern engine in Rust that checks the time budget while it works.
