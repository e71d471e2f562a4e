//! Stores and reads a user's birth details with in-process encryption.
//!
//! ```sh
//! export PGSEAL_MASTER_KEY=$(pgseal keygen)
//! export DATABASE_URL=postgres://postgres@127.0.0.1:5432/app
//! cargo run -p pgseal --example birth_details
//! ```
//!
//! The table declares its sensitive columns with pgseal domain types; the database only ever
//! receives ciphertext, and rejects plaintext written to those columns by any other path.

use pgseal::value::{format_text, parse_text, SessionSettings};
use pgseal::{init, load_master_keys_from_env, AuditLog, Ciphertext, LogicalType, Sealer, Value};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| "set DATABASE_URL to the database to use, e.g. postgres://user@host/db")?;
    let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            eprintln!("connection error: {err}");
        }
    });

    // One-time setup, normally done by `pgseal init` and a migration.
    let master = load_master_keys_from_env()?;
    let audit = AuditLog::from_env()?;
    init(&mut client, &master.keyring, &audit).await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS birth_charts (
                 id          serial PRIMARY KEY,
                 name        text NOT NULL,
                 birth_date  pgseal.date,
                 birth_time  pgseal.time,
                 birth_place pgseal.text
             )",
        )
        .await?;

    // Sealer::from_env creates the keys of the columns just declared.
    let sealer = Sealer::from_env(&mut client).await?;
    // Values as a form would deliver them, parsed exactly as PostgreSQL would parse them.
    let session = SessionSettings::default();
    let date = parse_text(LogicalType::Date, "1990-04-12", &session)?;
    let time = parse_text(LogicalType::Time, "14:30", &session)?;
    let place = Value::Text("Lyon, France".to_owned());
    let row = client
        .query_one(
            "INSERT INTO birth_charts (name, birth_date, birth_time, birth_place)
             VALUES ($1, $2, $3, $4) RETURNING id",
            &[
                &"Ada",
                &sealer.seal("birth_charts", "birth_date", &date)?,
                &sealer.seal("birth_charts", "birth_time", &time)?,
                &sealer.seal("birth_charts", "birth_place", &place)?,
            ],
        )
        .await?;
    let id: i32 = row.get(0);

    let row = client
        .query_one(
            "SELECT name, birth_date, birth_time, birth_place FROM birth_charts WHERE id = $1",
            &[&id],
        )
        .await?;
    let name: String = row.get(0);
    let stored: Ciphertext = row.get(3);
    let opened_date = sealer.open("birth_charts", "birth_date", &row.get(1))?;
    let opened_time = sealer.open("birth_charts", "birth_time", &row.get(2))?;
    let opened_place = sealer.open("birth_charts", "birth_place", &stored)?;
    assert_eq!(
        (&opened_date, &opened_time, &opened_place),
        (&date, &time, &place)
    );

    println!(
        "{name}: born {} at {} in {} (stored as {} bytes of ciphertext)",
        format_text(&opened_date, &session),
        format_text(&opened_time, &session),
        format_text(&opened_place, &session),
        stored.as_bytes().len()
    );
    Ok(())
}
