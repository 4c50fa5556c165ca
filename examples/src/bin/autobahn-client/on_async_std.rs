//! The testee client on async-std.

use wavecast_async_std::{connect_with, ClientRequest, Config, Message};
use wavecast_examples::Failure;

use crate::Options;

pub(crate) fn run(options: Options) -> Result<(), Failure> {
    async_std::task::block_on(async {
        // The suite sends messages up to 16 MiB.
        let config = Config::default()
            .with_max_message_size(16 << 20)
            .with_max_frame_size(16 << 20);
        let count = case_count(&options.case_count_url(), &config).await?;
        println!("running {count} cases as {}", options.agent);
        for case in 1..=count {
            let url = options.case_url(case);
            let (request, _) = ClientRequest::from_url(&url)?;
            // A case may fail the handshake or the connection on purpose.
            let Ok((mut ws, _)) = connect_with(&url, request, config.clone()).await else {
                continue;
            };
            while let Some(Ok(message)) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            // The server files a case when the connection ends: the next
            // connection (the last one asks for the reports) waits for it.
            ws.closed().await;
        }
        let url = options.reports_url();
        let (request, _) = ClientRequest::from_url(&url)?;
        let (mut ws, _) = connect_with(&url, request, config)
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
        while ws.recv().await.is_some() {}
        ws.closed().await;
        println!("reports updated");
        Ok(())
    })
}

async fn case_count(url: &str, config: &Config) -> Result<u32, Failure> {
    let (request, _) = ClientRequest::from_url(url)?;
    let (mut ws, _) = connect_with(url, request, config.clone())
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let mut count = None;
    while let Some(message) = ws.recv().await {
        if let Message::Text(text) = message? {
            count = text.trim().parse().ok();
        }
    }
    count.ok_or_else(|| format!("{url} did not answer with a case count").into())
}
