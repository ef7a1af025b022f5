//! `example-shop worker` serves the shop's jobs until Ctrl-C or SIGTERM;
//! `example-shop order EMAIL CENTS` places an order; `example-shop report
//! DAY` enqueues a report. Redis at `$REDIS_URL` (default
//! `redis://127.0.0.1:6379`), for the jobs and the shop's data alike.

use example_shop::{App, DailyReport, place_order, worker};
use jobstream::Producer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let producer = Producer::connect(&url).await?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["worker"] => {
            let app = App::new(&url, producer)?;
            worker(&url, app).build()?.run().await?;
        }
        ["order", email, cents] => {
            // A real shop has its own order ids; the time will do here.
            let order_id = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as u64;
            let id = place_order(&producer, order_id, email, cents.parse()?).await?;
            println!("order {order_id}: charge job {id}");
        }
        ["report", day] => {
            let id = producer
                .enqueue(&DailyReport {
                    day: day.to_string(),
                })
                .await?;
            println!("report job {id}");
        }
        _ => {
            eprintln!("usage: example-shop worker | order EMAIL CENTS | report DAY");
            std::process::exit(2);
        }
    }
    Ok(())
}
