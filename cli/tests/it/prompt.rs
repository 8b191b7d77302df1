//! Prompts on a terminal, through a pseudo-terminal: a missing input is asked for, a wrong
//! answer is asked again, and inputs with options are a selection list.

use std::time::Duration;

use expectrl::Session;

use crate::server::INPUTS;
use crate::support::Server;

/// Keys as a terminal sends them.
const DOWN: &str = "\x1b[B";
const ENTER: &str = "\r";

/// `rivet ARGS...` on a pseudo-terminal, pointed at `server`.
fn spawn(server: &Server, args: &[&str]) -> Session {
    let mut command = server.std_command();
    command.args(args).env("TERM", "xterm");
    let mut session = Session::spawn(command).expect("spawn rivet on a pseudo-terminal");
    session.set_expect_timeout(Some(Duration::from_secs(30)));
    session
}

/// Waits for `needle` on the terminal, failing with what was seen instead.
fn expect(session: &mut Session, needle: &str) {
    if let Err(err) = session.expect(needle) {
        panic!("`{needle}` never showed on the terminal: {err}");
    }
}

/// How long rivet may take to exit once the dialogue is over.
const EXIT_PATIENCE: Duration = Duration::from_secs(30);

/// Waits for the process to end and returns its exit code. A rivet that does not end in
/// [`EXIT_PATIENCE`] is killed and fails the test, rather than hanging it.
fn exit_code(session: &mut Session) -> i32 {
    let process = session.get_process_mut();
    let start = std::time::Instant::now();
    loop {
        match process.status().expect("rivet's status") {
            expectrl::WaitStatus::StillAlive if start.elapsed() < EXIT_PATIENCE => {
                std::thread::sleep(Duration::from_millis(20));
            }
            expectrl::WaitStatus::StillAlive => {
                let _ = process.exit(true);
                panic!("rivet did not exit within {EXIT_PATIENCE:?}, so the test killed it");
            }
            expectrl::WaitStatus::Exited(_, code) => return code,
            other => panic!("rivet did not exit normally: {other:?}"),
        }
    }
}

#[test]
fn missing_inputs_are_asked_for_and_wrong_answers_asked_again() {
    let server = Server::start();
    server.create("greeter.lua", INPUTS);
    let mut session = spawn(&server, &["job", "launch", "greeter"]);
    expect(&mut session, "Inputs of pipeline greeter");

    // Inputs come sorted by name: count, env, loud, who.
    expect(&mut session, "count (number, required): How many times");
    session.send(format!("many{ENTER}")).expect("type");
    expect(&mut session, "`many` is not a number");
    session.send(format!("3{ENTER}")).expect("type");

    // Options are a list with the default selected; one down picks the next.
    expect(&mut session, "env (string): Where");
    expect(&mut session, "staging");
    session.send(DOWN).expect("type");
    session.send(ENTER).expect("type");

    // A bool is a list of true and false, the default first selected.
    expect(&mut session, "loud (bool): Shout");
    session.send(ENTER).expect("type");

    // A required string cannot be left empty.
    expect(&mut session, "who (string, required): Who to greet");
    session.send(ENTER).expect("type");
    expect(&mut session, "who is required");
    session.send(format!("Grace{ENTER}")).expect("type");

    expect(&mut session, "launched job");
    assert_eq!(exit_code(&mut session), 0);

    let jobs = server.json(&["job", "list"]);
    assert_eq!(jobs[0]["inputs"], serde_json::json!({ "count": 3.0, "env": "staging", "loud": false, "who": "Grace" }));
}

#[test]
fn given_inputs_are_not_asked_and_defaults_are_taken_with_enter() {
    let server = Server::start();
    server.create("greeter.lua", INPUTS);
    let mut session = spawn(&server, &["job", "launch", "greeter", "--input", "who=Ada", "--input", "count=x"]);
    // An invalid given value is reported and asked again.
    expect(&mut session, "input `count`: `x` is not a number");
    expect(&mut session, "count (number, required)");
    session.send(format!("1{ENTER}")).expect("type");
    expect(&mut session, "env (string)");
    session.send(ENTER).expect("type");
    expect(&mut session, "loud (bool)");
    session.send(ENTER).expect("type");
    expect(&mut session, "launched job");
    assert_eq!(exit_code(&mut session), 0);

    let jobs = server.json(&["job", "list"]);
    assert_eq!(jobs[0]["inputs"], serde_json::json!({ "count": 1.0, "env": "dev", "loud": false, "who": "Ada" }));
}

#[test]
fn no_input_on_a_terminal_asks_nothing() {
    let server = Server::start();
    server.create("greeter.lua", INPUTS);
    let mut session = spawn(&server, &["job", "launch", "greeter", "--no-input", "--input", "who=Ada"]);
    expect(&mut session, "input `count`: is required");
    assert_eq!(exit_code(&mut session), 7);
}

#[test]
fn deleting_on_a_terminal_asks_first() {
    let server = Server::start();
    server.create("greeter.lua", INPUTS);
    let mut session = spawn(&server, &["pipeline", "delete", "greeter"]);
    expect(&mut session, "Delete pipeline greeter");
    session.send("n").expect("type");
    expect(&mut session, "nothing deleted");
    assert_eq!(exit_code(&mut session), 1);
    assert_eq!(server.json(&["pipeline", "list"]).as_array().map(Vec::len), Some(1));

    let mut session = spawn(&server, &["pipeline", "delete", "greeter"]);
    expect(&mut session, "Delete pipeline greeter");
    session.send("y").expect("type");
    expect(&mut session, "deleted pipeline greeter");
    assert_eq!(exit_code(&mut session), 0);
}

/// `rivet secret set` on a terminal asks for the value without echoing it.
#[test]
fn a_secret_value_is_asked_for_without_echo() {
    const VALUE: &str = "typed-on-the-terminal-77";
    let server = Server::start();
    let mut session = spawn(&server, &["secret", "set", "TYPED_TOKEN"]);
    expect(&mut session, "value of TYPED_TOKEN");
    session.send(format!("{VALUE}{ENTER}")).expect("type");
    let seen = match session.expect("set secret TYPED_TOKEN (global)") {
        Ok(found) => String::from_utf8_lossy(found.before()).into_owned(),
        Err(err) => panic!("the secret was not set: {err}"),
    };
    assert!(!seen.contains(VALUE), "the value was echoed: {seen:?}");
    assert_eq!(exit_code(&mut session), 0);
    let listed = server.json(&["secret", "list"]);
    assert_eq!(listed[0]["name"], "TYPED_TOKEN");
}
