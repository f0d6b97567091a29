//! Word count: lines from `text-lines` become (word, count) updates in `word-counts`.
//!
//! ```sh
//! strom topic create text-lines --partitions 3 && strom topic create word-counts --partitions 3
//! cargo run -p strom-streams --example word_count -- 127.0.0.1:9092
//! printf 'the quick fox\nthe lazy dog\n' | strom produce text-lines
//! ```

use strom_streams::{KafkaStreams, StreamsBuilder, StreamsConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>("text-lines")
        .flat_map_values(|_, line: String| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone())
        .count("word-counts-store")?
        .to_stream()
        .map_values(|_, n| n.to_string())
        .to("word-counts");
    let topology = builder.build()?;
    println!("{}", topology.describe());
    let mut app = KafkaStreams::new(topology, StreamsConfig::new("word-count", &bootstrap));
    app.start().await?;
    tokio::signal::ctrl_c().await?;
    tokio::task::spawn_blocking(move || app.close()).await?;
    Ok(())
}
