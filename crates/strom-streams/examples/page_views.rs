//! Windowed page-view counts: views (key: user, value: page) from `page-views` counted per
//! page in one-minute tumbling windows with 10 s of grace; one final count per window goes
//! to `page-view-counts` as "page@window-start" -> count.

use strom_streams::{KafkaStreams, StreamsBuilder, StreamsConfig, TimeWindows};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("page-views")
        .group_by(|_user, page| page.clone())
        .windowed_by(TimeWindows::of_size(60_000).grace(10_000))
        .count("page-view-windows")?
        .suppress_until_window_closes("page-view-suppress")?
        .to_stream()
        .map(|w, n| (format!("{}@{}", w.key, w.start), n.to_string()))
        .to("page-view-counts");
    let mut app = KafkaStreams::new(
        builder.build()?,
        StreamsConfig::new("page-views", &bootstrap),
    );
    app.start().await?;
    tokio::signal::ctrl_c().await?;
    tokio::task::spawn_blocking(move || app.close()).await?;
    Ok(())
}
