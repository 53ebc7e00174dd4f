//! The admin tool for API keys in a database: issue, list, disable, enable, revoke.
//!
//! ```sh
//! cargo run --features sqlite --example api_keys -- issue --account acct_123 --roles read,write --expires 30d
//! cargo run --features sqlite --example api_keys -- list
//! cargo run --features sqlite --example api_keys -- disable key_0123456789abcdef
//! cargo run --all-features --example api_keys -- --db postgres://localhost/app revoke key_0123456789abcdef
//! ```
//!
//! `--db` is `sqlite://PATH` or `postgres://…`; the default is the demo server's
//! `sqlite://bulk_api_keys.db`, so a key disabled here is refused by the running demo on its
//! next request. `issue` prints the new key's id and secret on two lines (`id: …`,
//! `key: …`): the secret is shown this once, the database keeps only its SHA-256 digest.

#![allow(unreachable_pub)]

#[path = "bulk_api/keys.rs"]
mod keys;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut url = keys::DEFAULT_DB.to_owned();
    if let Some(at) = args.iter().position(|arg| arg == "--db") {
        if at + 1 >= args.len() {
            eprintln!("--db needs a URL\n{}", keys::USAGE);
            std::process::exit(2);
        }
        url = args.remove(at + 1);
        args.remove(at);
    }
    if args.is_empty() || args[0] == "--help" || args[0] == "-h" {
        eprintln!("{}", keys::USAGE);
        std::process::exit(2);
    }
    match run(&url, &args).await {
        Ok(output) => print!("{output}"),
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(1);
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn run(url: &str, args: &[String]) -> Result<String, String> {
    keys::open(url).await?.admin(args).await
}

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
async fn run(url: &str, _: &[String]) -> Result<String, String> {
    Err(format!(
        "{url}: this build has no database store; run with `--features sqlite` (or `postgres`)"
    ))
}
