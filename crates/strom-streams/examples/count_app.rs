//! A count-per-key application run as its own process (the kill -9 tests start and kill
//! it): counts the records of each key of INPUT into OUTPUT (8-byte big-endian counts).
//!
//! ```sh
//! count_app BOOTSTRAP APP_ID INPUT OUTPUT [key=value ...]   # Streams settings
//! ```

use strom_streams::{KafkaStreams, Materialized, StreamsBuilder, StreamsConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, app_id, input, output, settings @ ..] = args.as_slice() else {
        return Err("usage: count_app BOOTSTRAP APP_ID INPUT OUTPUT [key=value ...]".into());
    };
    let mut config = StreamsConfig::new(app_id, bootstrap);
    for s in settings {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| format!("not key=value: {s}"))?;
        config.set(k, v)?;
    }
    let builder = StreamsBuilder::new();
    builder
        .stream::<String, String>(input)
        .group_by_key()
        .count(Materialized::persistent("counts"))?
        .to_stream()
        .to(output);
    let mut app = KafkaStreams::new(builder.build()?, config);
    app.start().await?;
    println!("started");
    tokio::signal::ctrl_c().await?;
    tokio::task::spawn_blocking(move || app.close()).await?;
    Ok(())
}
