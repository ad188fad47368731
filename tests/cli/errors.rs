//! Configuration errors exit 3 and name what is wrong; controller and network errors exit 4.

use crate::harness::Cli;
use miso_client::Endpoint;
use miso_client::testing::Fault;

#[test]
fn a_missing_variable_exits_3_and_is_named() {
    let cli = Cli::new();
    for variable in ["MISO_CONTROLLER_URL", "MISO_CLIENTID", "MISO_CLIENTSECRET"] {
        let run = cli.run_with(&["validate"], &cli.env_without(variable), None);
        assert_eq!(run.code, 3, "{variable}");
        assert!(run.stderr.contains(variable), "{}", run.stderr);
        let json = cli
            .run_with(&["validate", "--json"], &cli.env_without(variable), None)
            .json();
        assert_eq!(json["error"]["kind"], "config");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains(variable), "{message}");
    }
}

#[test]
fn a_malformed_variable_exits_3_and_is_named() {
    let cli = Cli::new();
    let mut malformed = cli.env();
    malformed.push(("MISO_TOKEN", cli.alice.clone()));
    malformed.push(("REDIS_PORT", "six".into()));
    malformed.push(("REDIS_HOST", "localhost".into()));
    let run = cli.run_with(&["validate"], &malformed, None);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("REDIS_PORT"), "{}", run.stderr);
}

/// The controller refusing the application's credentials is a configuration problem too.
#[test]
fn refused_credentials_exit_3_and_name_the_client_id() {
    let cli = Cli::new();
    let mut wrong_secret = cli.env_without("MISO_CLIENTSECRET");
    wrong_secret.push(("MISO_CLIENT_SECRET", "not-the-secret".into()));
    let run = cli.run_with(&["validate"], &wrong_secret, None);
    assert_eq!(run.code, 3, "{}", run.stderr);
    let names_the_id = run.stderr.contains("test-app");
    assert!(names_the_id, "names the client id: {}", run.stderr);
    assert!(!run.stderr.contains("not-the-secret"));
}

#[test]
fn controller_and_network_errors_exit_4() {
    let cli = Cli::new();
    cli.fake.inject(Endpoint::Validate, Fault::status(503), 1);
    let run = cli.run(&["validate"]);
    assert_eq!(run.code, 4);
    assert!(run.stderr.contains("503"), "{}", run.stderr);

    cli.fake.inject(Endpoint::Roles, Fault::status(503), 1);
    let json = cli.run(&["roles", "--json"]).json();
    assert_eq!(json["error"]["kind"], "controller");
    assert_eq!(json["error"]["status"], 503);

    // Nothing listens on a port we just gave back.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut env = cli.env();
    env[0].1 = format!("http://127.0.0.1:{port}");
    let run = cli.run_with(&["validate", "--token", &cli.alice], &env, None);
    assert_eq!(run.code, 4, "{}", run.stderr);
}
