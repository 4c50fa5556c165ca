//! Property test for room history and catch-up: a client that disconnects
//! and reconnects with its last position, through `History::recover` and
//! `CatchUp`, while a room publishes, its clock advances and its history is
//! sometimes lost. The client must see the published sequence restricted to
//! the spans it was connected for or recovered: no duplicates, no
//! reordering, every gap announced by `NotRecovered`, and `NotRecovered`
//! only when something really was lost.

use proptest::prelude::*;
use wavecast_core::history::{
    CatchUp, CatchUpEvent, History, HistoryConfig, Recovery, StreamPosition,
};

#[derive(Clone, Debug)]
enum Op {
    /// The room publishes one item.
    Publish,
    /// The clock moves on.
    Advance(u64),
    /// The client's connection drops.
    Disconnect,
    /// The client (re)connects with its last position: the node subscribes
    /// to live publications, `before_fetch` are published, the history is
    /// read, `after_fetch` more are published; the first
    /// `live_before_history` of those live publications reach the catch-up
    /// before the history does, the rest after. A client without a
    /// position starts live, or with `from_current` when `fetch_fresh`.
    Reconnect {
        before_fetch: usize,
        after_fetch: usize,
        live_before_history: usize,
        fetch_fresh: bool,
    },
    /// The room's history is lost: a new epoch starts at offset 0.
    HistoryLost,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => Just(Op::Publish),
        // Steps of 10 ms against TTLs in tens hit expiry boundaries exactly.
        3 => (0u64..5).prop_map(|tens| Op::Advance(10 * tens)),
        2 => Just(Op::Disconnect),
        3 => (0usize..5, 0usize..5, 0usize..11, any::<bool>()).prop_map(|(b, a, l, f)| {
            Op::Reconnect {
                before_fetch: b,
                after_fetch: a,
                live_before_history: l,
                fetch_fresh: f,
            }
        }),
        1 => Just(Op::HistoryLost),
    ]
}

#[derive(Clone, Debug)]
struct Setup {
    config: HistoryConfig,
    buffer_limit: usize,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        0usize..12,
        prop::option::of((1u64..12).prop_map(|tens| 10 * tens)),
        0usize..10,
        0usize..8,
    )
        .prop_map(|(size, ttl_ms, max_replay, buffer_limit)| Setup {
            config: HistoryConfig::default()
                .with_size(size)
                .with_ttl_ms(ttl_ms)
                .with_max_replay(max_replay),
            buffer_limit,
        })
}

/// Checks the client's event stream as it is delivered.
#[derive(Debug, Default)]
struct Checker {
    /// The client's position after the last event.
    pos: Option<StreamPosition>,
    /// The id of the last publication delivered (ids count publications).
    last_id: Option<u64>,
}

/// What one operation's events held besides publications.
#[derive(Debug, Default)]
struct Marks {
    not_recovered: usize,
    recovered: usize,
}

impl Checker {
    fn observe(
        &mut self,
        event: CatchUpEvent<u64>,
        published: &[StreamPosition],
        marks: &mut Marks,
    ) -> Result<(), TestCaseError> {
        match event {
            CatchUpEvent::Publication(pos, id) => {
                prop_assert_eq!(
                    published[id as usize],
                    pos,
                    "item {} at the wrong position",
                    id
                );
                prop_assert!(
                    self.last_id.is_none_or(|last| last < id),
                    "publication {} after {:?}: duplicate or reordered",
                    id,
                    self.last_id
                );
                if let Some(prev) = self.pos {
                    prop_assert!(
                        prev.epoch == pos.epoch && prev.offset + 1 == pos.offset,
                        "silent gap from {} to {}",
                        prev,
                        pos
                    );
                }
                self.pos = Some(pos);
                self.last_id = Some(id);
            }
            CatchUpEvent::NotRecovered { current } => {
                marks.not_recovered += 1;
                self.pos = Some(current);
            }
            CatchUpEvent::Recovered { current } => {
                marks.recovered += 1;
                // A fresh client learns its position here.
                if self.pos.is_some() {
                    prop_assert_eq!(self.pos, Some(current), "recovered at the wrong position");
                }
                self.pos = Some(current);
            }
            other => prop_assert!(false, "unexpected event {:?}", other),
        }
        Ok(())
    }
}

struct Sim {
    config: HistoryConfig,
    buffer_limit: usize,
    history: History<u64>,
    now: u64,
    /// Position of every publication, by id.
    published: Vec<StreamPosition>,
    /// Publication times in the current epoch, by offset - 1.
    times: Vec<u64>,
    /// The client's catch-up while it is connected.
    client: Option<CatchUp<u64>>,
    /// The position the client reconnects with.
    last: Option<StreamPosition>,
    /// Whether the room published since the client connected.
    published_since_connect: bool,
    checker: Checker,
}

impl Sim {
    fn new(s: &Setup) -> Sim {
        Sim {
            config: s.config,
            buffer_limit: s.buffer_limit,
            history: History::new(s.config, 0x5eed),
            now: 0,
            published: Vec::new(),
            times: Vec::new(),
            client: Some(CatchUp::new(None, s.buffer_limit)),
            last: None,
            published_since_connect: false,
            checker: Checker::default(),
        }
    }

    /// Publishes the next item to the history; returns it with its position.
    fn publish(&mut self) -> (StreamPosition, u64) {
        let id = self.published.len() as u64;
        let pos = self.history.append(id, self.now);
        self.published.push(pos);
        self.times.push(self.now);
        self.published_since_connect = true;
        (pos, id)
    }

    fn drain(&mut self) -> Result<Marks, TestCaseError> {
        let mut marks = Marks::default();
        if let Some(client) = &mut self.client {
            while let Some(event) = client.poll_event() {
                self.checker.observe(event, &self.published, &mut marks)?;
            }
            prop_assert_eq!(client.position(), self.checker.pos);
        }
        Ok(marks)
    }

    /// Whether a client at `since` can recover right now, worked out from
    /// the record of publications rather than from `History`.
    fn recoverable(&self, since: StreamPosition) -> bool {
        let top = self.history.top();
        if since.epoch != top.epoch || since.offset > top.offset {
            return false;
        }
        let missed = (top.offset - since.offset) as usize;
        if missed == 0 {
            return true;
        }
        let first_missed_at = self.times[since.offset as usize];
        missed <= self.config.max_replay
            && missed <= self.config.size
            && self
                .config
                .ttl_ms
                .is_none_or(|ttl| first_missed_at + ttl > self.now)
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Publish => {
                let (pos, id) = self.publish();
                if let Some(client) = &mut self.client {
                    let epoch_changed = self.checker.pos.is_some_and(|p| p.epoch != pos.epoch);
                    client.on_live(pos, id);
                    let marks = self.drain()?;
                    prop_assert_eq!(marks.not_recovered, usize::from(epoch_changed));
                    prop_assert_eq!(marks.recovered, 0);
                }
            }
            Op::Advance(ms) => self.now += ms,
            Op::Disconnect => {
                if let Some(client) = self.client.take() {
                    self.last = client.position();
                }
            }
            Op::Reconnect {
                before_fetch,
                after_fetch,
                live_before_history,
                fetch_fresh,
            } => {
                if let Some(client) = self.client.take() {
                    self.last = client.position();
                }
                self.published_since_connect = false;
                let since = self.last;
                let fresh = since.is_none() && fetch_fresh;
                let mut client = match fresh {
                    true => CatchUp::from_current(self.buffer_limit),
                    false => CatchUp::new(since, self.buffer_limit),
                };
                let mut live = Vec::new();
                for _ in 0..before_fetch {
                    live.push(self.publish());
                }
                // A fresh client asks only for the room's current position.
                let ask = since.or(fresh.then(|| self.history.top()));
                let fetched = ask.map(|s| (self.recoverable(s), self.history.recover(s, self.now)));
                for _ in 0..after_fetch {
                    live.push(self.publish());
                }
                let early = live_before_history.min(live.len());
                let (first, rest) = live.split_at(early);
                for &(pos, id) in first {
                    client.on_live(pos, id);
                }
                let expected_gap = match fetched {
                    Some((recoverable, recovery)) => {
                        prop_assert_eq!(
                            recovery.is_recovered(),
                            recoverable,
                            "recover({:?}) at {} ms: {:?}",
                            since,
                            self.now,
                            recovery
                        );
                        if let Recovery::Recovered { items, .. } = &recovery {
                            prop_assert_eq!(
                                items.len() as u64,
                                recovery.current().offset - ask.map_or(0, |s| s.offset)
                            );
                        }
                        client.on_history(recovery);
                        // The buffer (at least 1) drops its oldest: a gap
                        // only if it dropped some of what came after the
                        // fetch.
                        let dropped = early.saturating_sub(self.buffer_limit.max(1));
                        !recoverable || dropped > before_fetch
                    }
                    None => false,
                };
                for &(pos, id) in rest {
                    client.on_live(pos, id);
                }
                self.client = Some(client);
                let marks = self.drain()?;
                prop_assert_eq!(marks.not_recovered > 0, expected_gap, "{:?}", marks);
                let expected_recovered = usize::from(ask.is_some() && !expected_gap);
                prop_assert_eq!(marks.recovered, expected_recovered, "{:?}", marks);
            }
            Op::HistoryLost => {
                let epoch = self.history.epoch() + 1;
                self.history = History::new(self.config, epoch);
                self.times.clear();
            }
        }
        // A connected client has everything published (unless the only news
        // is an epoch with nothing in it yet).
        if let Some(client) = &self.client {
            prop_assert!(!client.is_fetching());
            match client.position() {
                Some(pos) => prop_assert!(
                    pos == self.history.top() || self.history.top().offset == 0,
                    "client at {} while the room is at {}",
                    pos,
                    self.history.top()
                ),
                None => prop_assert!(!self.published_since_connect, "a publication was missed"),
            }
        }
        prop_assert!(self.history.len() <= self.config.size);
        Ok(())
    }
}

proptest! {
    #[test]
    fn reconnecting_client_sees_every_publication_once_or_a_gap(
        setup in setup(),
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let mut sim = Sim::new(&setup);
        for op in &ops {
            sim.step(op)?;
        }
    }
}
