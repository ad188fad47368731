//! The command line itself: usage errors exit 3 (not clap's 2, which means "token not
//! valid" here), help and version exit 0, misspellings get a suggestion, and a missing
//! token is told apart from an empty one.

use crate::harness::Cli;
use serde_json::Value;

#[test]
fn usage_errors_exit_3_and_point_at_the_help() {
    let cli = Cli::new();
    for args in [
        &[][..],
        &["frobnicate"],
        &["validate", "--frob"],
        &["validate", "roles"],
        &["check"],
        &["check", "--role", ""],
        &["roles", "--role", "admin"],
        &["validate", "--token"],
    ] {
        let run = cli.run_with(args, &cli.env(), None);
        assert_eq!(run.code, 3, "{args:?}: {}", run.stderr);
        let points = run.stderr.contains("miso --help");
        assert!(points, "{args:?}: {}", run.stderr);
    }
    let json = cli
        .run_with(&["--json", "frobnicate"], &cli.env(), None)
        .json();
    assert_eq!(json["error"]["kind"], "usage");
}

#[test]
fn a_missing_subcommand_exits_3() {
    let cli = Cli::new();
    let run = cli.run_with(&[], &cli.env(), None);
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains("requires a subcommand"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
    let json = cli.run_with(&["--json"], &cli.env(), None).json();
    assert_eq!(json["command"], Value::Null);
    assert_eq!(json["error"]["kind"], "usage");
}

#[test]
fn misspellings_exit_3_with_a_suggestion() {
    let cli = Cli::new();
    for (args, tip) in [
        (
            &["validate", "--jsn"][..],
            "a similar argument exists: '--json'",
        ),
        (
            &["check", "--rol", "admin"],
            "a similar argument exists: '--role'",
        ),
        (&["valdate"], "a similar subcommand exists: 'validate'"),
    ] {
        let run = cli.run_with(args, &cli.env(), None);
        assert_eq!(run.code, 3, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(tip), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn help_exits_0_and_lists_every_subcommand_and_the_exit_codes() {
    let cli = Cli::new();
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let help = cli.run_with(args, &[], None);
        assert_eq!(help.code, 0, "{args:?}");
        assert!(help.stdout.contains("exit codes"), "{args:?}");
        let commands = ["validate", "user-info", "roles", "permissions", "check"];
        for command in commands.iter().chain(&["logout", "completions", "fake"]) {
            assert!(help.stdout.contains(command), "{args:?} lists {command}");
        }
    }
    let check = cli.run_with(&["check", "--help"], &[], None);
    assert_eq!(check.code, 0);
    assert!(check.stdout.contains("--permission"), "{}", check.stdout);
    let long = cli.run_with(&["--help"], &[], None).stdout;
    assert!(
        long.contains("`missing_permissions`"),
        "documents the JSON keys"
    );
}

#[test]
fn version_exits_0_with_the_crate_version() {
    let cli = Cli::new();
    for flag in ["--version", "-V"] {
        let version = cli.run_with(&[flag], &[], None);
        assert_eq!(version.code, 0, "{flag}");
        let expected = format!("miso {}\n", env!("CARGO_PKG_VERSION"));
        assert_eq!(version.stdout, expected, "{flag}");
    }
}

#[test]
fn completions_print_a_script_for_each_shell() {
    let cli = Cli::new();
    let bash = cli.run_with(&["completions", "bash"], &[], None);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    assert!(bash.stdout.contains("miso"), "{}", bash.stdout);
    assert!(bash.stdout.contains("user-info"), "{}", bash.stdout);
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let run = cli.run_with(&["completions", shell], &[], None);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(run.stdout.contains("miso"), "{shell}");
    }
    assert_eq!(cli.run_with(&["completions", "tcsh"], &[], None).code, 3);
}

#[test]
fn no_token_at_all_is_a_usage_error_saying_none_was_given() {
    let cli = Cli::new();
    for stdin in [None, Some(""), Some("  \n")] {
        let run = cli.run_with(&["validate"], &cli.env(), stdin);
        assert_eq!(run.code, 3, "{stdin:?}");
        for words in ["no token given", "--token", "MISO_TOKEN", "standard input"] {
            assert!(run.stderr.contains(words), "{stdin:?}: {}", run.stderr);
        }
        assert!(!run.stderr.contains("empty"), "{stdin:?}: {}", run.stderr);
    }
    let json = cli
        .run_with(&["validate", "--json"], &cli.env(), Some("  \n"))
        .json();
    assert_eq!(json["error"]["kind"], "usage");
}

#[test]
fn an_empty_token_is_told_apart_from_none() {
    let cli = Cli::new();
    let run = cli.run_with(&["validate", "--token", ""], &cli.env(), None);
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("--token is empty"), "{}", run.stderr);
    let mut env = cli.env();
    env.push(("MISO_TOKEN", String::new()));
    let run = cli.run_with(&["validate"], &env, None);
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains("MISO_TOKEN is set but empty"),
        "{}",
        run.stderr
    );
}
