//! `rivet config show`: each effective setting and where it came from.

use serde_json::json;

use crate::config::Loaded;
use crate::view::{self, Table};
use crate::{Format, exit};

/// A token as it is shown: never in full.
fn masked(token: &str) -> String {
    let tail: String = token.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    if token.chars().count() > 8 {
        format!("…{tail} ({} characters)", token.chars().count())
    } else {
        "(set)".to_owned()
    }
}

/// `rivet config show`.
pub fn show(loaded: &Loaded, format: Format) -> u8 {
    let settings = &loaded.settings;
    let file = loaded.file.as_ref().map(|file| file.display().to_string());
    let file_exists = loaded.file.as_ref().is_some_and(|file| file.is_file());
    let token_source = if settings.token.is_some() { loaded.source_of("token") } else { "not set".to_owned() };
    match format {
        Format::Json => view::print_json(&json!({
            "server": { "value": settings.server, "source": loaded.source_of("server") },
            "token": { "value": settings.token.as_deref().map(masked), "source": token_source },
            "ca_file": { "value": settings.ca_file, "source": loaded.source_of("ca_file") },
            "config_file": { "path": file, "exists": file_exists },
        })),
        Format::Table => {
            let mut table = Table::new(&["SETTING", "VALUE", "SOURCE"]);
            table.row(vec!["server".to_owned(), settings.server.clone(), loaded.source_of("server")]);
            table.row(vec![
                "token".to_owned(),
                settings.token.as_deref().map_or_else(|| "-".to_owned(), masked),
                token_source,
            ]);
            let ca_file = settings.ca_file.as_ref().map_or_else(|| "-".to_owned(), |path| path.display().to_string());
            table.row(vec!["ca_file".to_owned(), ca_file, loaded.source_of("ca_file")]);
            print!("{}", table.render());
            match file {
                Some(file) if file_exists => println!("\nconfig file: {file}"),
                Some(file) => println!("\nconfig file: {file} (not present)"),
                None => println!("\nconfig file: none (neither XDG_CONFIG_HOME nor HOME is set)"),
            }
            println!("precedence: flags > RIVET_SERVER/RIVET_TOKEN/RIVET_CA_FILE > config file > defaults");
        }
    }
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_never_shown_in_full() {
        assert_eq!(masked("secret"), "(set)");
        assert_eq!(masked("0123456789abcdef"), "…cdef (16 characters)");
    }
}
