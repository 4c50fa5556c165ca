//! Property tests for permessage-deflate: with random negotiation
//! parameters on both sides, any sequence of messages (any sizes, any
//! fragmentation, compressible or not) crosses a client–server pair intact
//! in both directions, and any split of the compressed wire bytes gives the
//! same events.
#![cfg(feature = "deflate")]

mod common;
mod deflate_common;

use proptest::collection::vec;
use proptest::prelude::*;
use wavecast_core::{Config, DeflateConfig, Event, Message, Role};

use common::{config, drain_events, drain_output};
use deflate_common::{handshake, negotiated_pair};

fn deflate_config() -> impl Strategy<Value = DeflateConfig> {
    (
        any::<bool>(),
        any::<bool>(),
        9u8..=15,
        9u8..=15,
        prop_oneof![Just(0usize), Just(1), Just(64), Just(128)],
        0u32..=9,
    )
        .prop_map(|(snct, cnct, sb, cb, threshold, level)| {
            DeflateConfig::default()
                .with_server_no_context_takeover(snct)
                .with_client_no_context_takeover(cnct)
                .with_server_max_window_bits(sb)
                .with_client_max_window_bits(cb)
                .with_threshold(threshold)
                .with_level(level)
        })
}

fn side() -> impl Strategy<Value = Config> {
    (
        proptest::option::of(deflate_config()),
        proptest::option::of(1usize..300),
    )
        .prop_map(|(deflate, fragment)| config().with_deflate(deflate).with_fragment_size(fragment))
}

/// Messages that compress well (repeats), poorly (noise) or not at all
/// (empty), text and binary.
fn message() -> impl Strategy<Value = Message> {
    let bytes = prop_oneof![
        vec(any::<u8>(), 0..600),
        (vec(0u8..4, 1..20), 1usize..200).prop_map(|(unit, n)| unit.repeat(n)),
        Just(Vec::new()),
    ];
    prop_oneof![
        bytes.clone().prop_map(|b| Message::Binary(b.into())),
        bytes.prop_map(|b| {
            let s: String = b.iter().map(|&c| char::from(b'a' + c % 26)).collect();
            Message::Text(s.into())
        }),
        "\\PC{0,80}".prop_map(|s| Message::Text(s.into())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn round_trip_with_random_parameters(
        client in side(),
        server in side(),
        messages in vec(message(), 1..12),
    ) {
        let mut pair = negotiated_pair(client.clone(), server.clone());
        let expect_deflate = client.deflate.is_some() && server.deflate.is_some();
        let (c, _) = handshake(&client, &server);
        prop_assert_eq!(c.deflate.is_some(), expect_deflate);
        for m in &messages {
            pair.client.send(m.clone()).unwrap();
        }
        pair.pump();
        let got: Vec<Event> = drain_events(&mut pair.server);
        let want: Vec<Event> = messages.iter().cloned().map(Event::Message).collect();
        prop_assert_eq!(&got, &want);
        for m in &messages {
            pair.server.send(m.clone()).unwrap();
        }
        pair.pump();
        prop_assert_eq!(drain_events(&mut pair.client), want);
    }

    #[test]
    fn any_split_of_compressed_input_gives_the_same_events(
        messages in vec(message(), 1..6),
        cut in any::<prop::sample::Index>(),
        takeover in any::<bool>(),
    ) {
        let mut deflate = DeflateConfig::default().with_threshold(0);
        if takeover {
            deflate = deflate.with_context_takeover(11);
        }
        let cfg = config().with_deflate(Some(deflate));
        let mut pair = negotiated_pair(cfg.clone(), cfg.clone());
        for m in &messages {
            pair.client.send(m.clone()).unwrap();
        }
        let wire = drain_output(&mut pair.client);
        let at = cut.index(wire.len() + 1);
        let (_, negotiated) = handshake(&cfg, &cfg);
        let mut server = wavecast_core::Connection::with_negotiated(
            Role::Server, cfg, &negotiated, pair.now);
        server.receive(pair.now, &wire[..at]);
        server.receive(pair.now, &wire[at..]);
        let want: Vec<Event> = messages.iter().cloned().map(Event::Message).collect();
        prop_assert_eq!(drain_events(&mut server), want);
    }
}
