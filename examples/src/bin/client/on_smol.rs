//! The client on smol.

use std::time::Duration;

use smol::future::or;
use wavecast_examples::Failure;
use wavecast_smol::{connect, CloseCode, Error, Message};

use crate::{now_text, Options};

enum Step {
    Tick,
    Incoming(Option<Result<Message, Error>>),
    Stop,
}

pub(crate) fn run(options: Options) -> Result<(), Failure> {
    let stop = ctrl_c();
    smol::block_on(async {
        let (mut ws, _) = connect(&options.url)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", options.url))?;
        println!("connected to {}", options.url);
        let mut ticker = smol::Timer::interval(Duration::from_secs(1));
        let (mut sent, mut received) = (0u64, 0u64);
        loop {
            if options.count.is_some_and(|n| received >= n) {
                break;
            }
            let may_send = options.count.is_none_or(|n| sent < n);
            let tick = async {
                if may_send {
                    smol::stream::StreamExt::next(&mut ticker).await;
                    Step::Tick
                } else {
                    std::future::pending().await
                }
            };
            let step = or(or(tick, async { Step::Incoming(ws.recv().await) }), async {
                let _ = stop.recv().await;
                Step::Stop
            })
            .await;
            match step {
                Step::Tick => {
                    ws.send(now_text()).await?;
                    sent += 1;
                }
                Step::Incoming(Some(Ok(message))) => {
                    received += 1;
                    print_message(&message);
                }
                Step::Incoming(Some(Err(e))) => return Err(e.into()),
                Step::Incoming(None) => {
                    println!("server closed the connection");
                    return Ok(());
                }
                Step::Stop => break,
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

/// A channel that receives once on Ctrl-C.
fn ctrl_c() -> smol::channel::Receiver<()> {
    let (tx, rx) = smol::channel::bounded(1);
    let _ = ctrlc::set_handler(move || {
        let _ = tx.try_send(());
    });
    rx
}
