//! Fraud-detection style alert: card payments (key: card number, value: amount in cents)
//! from `payments` grouped into sessions of activity (a card quiet for 5 minutes ends its
//! session); a finished session with 5 or more payments becomes an alert in `fraud-alerts`.

use strom_streams::{KafkaStreams, SessionWindows, StreamsBuilder, StreamsConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, i64>("payments")
        .group_by_key()
        .windowed_by_session(SessionWindows::with_inactivity_gap(5 * 60_000).grace(30_000))
        .count("payment-sessions")?
        .suppress_until_window_closes("payment-sessions-suppress")?
        .to_stream()
        .filter(|_, n| *n >= 5)
        .map(|w, n| {
            (
                w.key.clone(),
                format!("{n} payments between {} and {}", w.start, w.end),
            )
        })
        .to("fraud-alerts");
    let mut app = KafkaStreams::new(
        builder.build()?,
        StreamsConfig::new("fraud-alert", &bootstrap),
    );
    app.start().await?;
    tokio::signal::ctrl_c().await?;
    tokio::task::spawn_blocking(move || app.close()).await?;
    Ok(())
}
