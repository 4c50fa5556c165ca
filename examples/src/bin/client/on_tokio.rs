//! The client on tokio.

use std::time::Duration;

use wavecast_examples::Failure;
use wavecast_tokio::{connect, CloseCode, Message};

use crate::{now_text, Options};

pub(crate) fn run(options: Options) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (mut ws, _) = connect(&options.url)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", options.url))?;
        println!("connected to {}", options.url);
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        let (mut sent, mut received) = (0u64, 0u64);
        loop {
            if options.count.is_some_and(|n| received >= n) {
                break;
            }
            tokio::select! {
                _ = ticker.tick(), if options.count.is_none_or(|n| sent < n) => {
                    ws.send(now_text()).await?;
                    sent += 1;
                }
                incoming = ws.recv() => match incoming {
                    Some(Ok(message)) => {
                        received += 1;
                        print_message(&message);
                    }
                    Some(Err(e)) => return Err(e.into()),
                    None => {
                        println!("server closed the connection");
                        return Ok(());
                    }
                },
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        ws.close(CloseCode::NORMAL, "bye").await?;
        Ok(())
    })
}

fn print_message(message: &Message) {
    match message {
        Message::Text(text) => println!("< {text}"),
        Message::Binary(bytes) => println!("< {} bytes of binary", bytes.len()),
    }
}
