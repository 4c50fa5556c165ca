//! Room history and catch-up after a reconnect, without I/O.
//!
//! Every publication in a room gets a [`StreamPosition`]: an offset that
//! grows by one per publication (the first is 1) and an epoch that names
//! one unbroken run of the room's history. When history is lost (a server
//! restart, an expired key in a shared store) the room starts a new epoch,
//! and positions from an old epoch can never be recovered.
//!
//! A client remembers the position of the last publication it got (for an
//! SSE client, the `Last-Event-ID`; see [`StreamPosition`]'s textual form)
//! and sends it when it reconnects. The server then:
//!
//! 1. subscribes the client to the room's live publications, and creates a
//!    [`CatchUp`] with the client's position; live publications go to
//!    [`CatchUp::on_live`] from now on;
//! 2. fetches the history the client missed ([`History::recover`] for the
//!    in-process history, or the same question asked of a shared store)
//!    and hands the answer to [`CatchUp::on_history`];
//! 3. after every input, drains [`CatchUp::poll_event`] and delivers the
//!    events in order.
//!
//! Subscribing first and fetching second means no publication falls between
//! the two, at the price of an overlap: a publication may come both from
//! the history and from the live stream. [`CatchUp`] buffers the live ones
//! while the fetch is in flight, drops the duplicates, and reports every
//! gap it cannot fill as an explicit [`CatchUpEvent::NotRecovered`] (the
//! application must reload its state), never as a silent skip. When the
//! client got everything it missed it says so with
//! [`CatchUpEvent::Recovered`].
//!
//! [`History`] keeps a bounded, in-memory history for one room: at most
//! [`HistoryConfig::size`] entries, each for at most
//! [`HistoryConfig::ttl_ms`]. The core has no clock: the caller passes the
//! current time in milliseconds (from any monotonic origin) and expired
//! entries are pruned lazily.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

/// Default [`HistoryConfig::max_replay`]: at most 1024 publications are
/// replayed to one reconnecting client.
pub const DEFAULT_MAX_REPLAY: usize = 1024;

/// Live publications a [`CatchUp`] buffers during a history fetch on top of
/// [`HistoryConfig::max_replay`], in [`HistoryConfig::catch_up_buffer`].
pub const CATCH_UP_SLACK: usize = 128;

/// The position of a publication in a room's stream: the epoch of the
/// room's history and the publication's offset in it (from 1; offset 0
/// means "before the first publication").
///
/// The textual form, `<offset>_<epoch in hex>` (for example `42_1f3a`),
/// is what [`fmt::Display`] writes and [`FromStr`] reads; it fits an SSE
/// `id:` field, so a browser's `Last-Event-ID` carries it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamPosition {
    /// Names one unbroken run of the room's history; changes whenever
    /// history is lost.
    pub epoch: u64,
    /// Publications in this epoch up to and including this one.
    pub offset: u64,
}

impl StreamPosition {
    /// The position `offset` in `epoch`.
    pub fn new(epoch: u64, offset: u64) -> StreamPosition {
        StreamPosition { epoch, offset }
    }

    /// The position just before this one in the same epoch (offset 0 stays
    /// 0).
    fn previous(self) -> StreamPosition {
        StreamPosition::new(self.epoch, self.offset.saturating_sub(1))
    }
}

impl fmt::Display for StreamPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{:x}", self.offset, self.epoch)
    }
}

/// Why a string is not a [`StreamPosition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PositionParseError {
    /// Longer than any position's textual form (37 bytes).
    #[error("stream position is too long (expected `<offset>_<epoch-hex>`)")]
    TooLong,
    /// There is no `_` between offset and epoch.
    #[error("stream position has no `_` (expected `<offset>_<epoch-hex>`)")]
    MissingSeparator,
    /// The offset is empty, not decimal digits, or larger than a `u64`.
    #[error("stream position offset must be 1 to 20 decimal digits fitting in 64 bits")]
    InvalidOffset,
    /// The epoch is empty, not hex digits, or larger than a `u64`.
    #[error("stream position epoch must be 1 to 16 hex digits")]
    InvalidEpoch,
}

/// The longest textual form: 20 decimal digits, `_`, 16 hex digits.
const MAX_POSITION_LEN: usize = 20 + 1 + 16;

impl FromStr for StreamPosition {
    type Err = PositionParseError;

    /// Reads `<offset>_<epoch in hex>`. The string usually comes from a
    /// peer (a `Last-Event-ID` header or a query parameter): anything else
    /// is an error, never a panic.
    fn from_str(s: &str) -> Result<StreamPosition, PositionParseError> {
        if s.len() > MAX_POSITION_LEN {
            return Err(PositionParseError::TooLong);
        }
        let (offset, epoch) = s
            .split_once('_')
            .ok_or(PositionParseError::MissingSeparator)?;
        // `u64::from_str` also takes a leading `+`; a position has digits only.
        if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PositionParseError::InvalidOffset);
        }
        if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PositionParseError::InvalidEpoch);
        }
        let offset = offset
            .parse()
            .map_err(|_| PositionParseError::InvalidOffset)?;
        let epoch = u64::from_str_radix(epoch, 16).map_err(|_| PositionParseError::InvalidEpoch)?;
        Ok(StreamPosition { epoch, offset })
    }
}

/// How much history a room keeps and how much of it one client may replay.
///
/// The default keeps no history ([`HistoryConfig::size`] 0): a reconnecting
/// client then recovers only when it missed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryConfig {
    /// Publications kept per room; older ones are evicted first. 0 (the
    /// default) keeps none. This is the bound on a [`History`]'s memory.
    pub size: usize,
    /// How long a publication stays in the history, in milliseconds: one
    /// published at `t` is gone once the time is `t + ttl_ms` or later.
    /// `None` (the default) keeps publications until [`HistoryConfig::size`]
    /// evicts them.
    pub ttl_ms: Option<u64>,
    /// The most publications replayed to one reconnecting client; a client
    /// that missed more is not recovered and must reload its state.
    /// Default [`DEFAULT_MAX_REPLAY`].
    pub max_replay: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            size: 0,
            ttl_ms: None,
            max_replay: DEFAULT_MAX_REPLAY,
        }
    }
}

impl HistoryConfig {
    /// Sets [`HistoryConfig::size`].
    pub fn with_size(mut self, publications: usize) -> Self {
        self.size = publications;
        self
    }

    /// Sets [`HistoryConfig::ttl_ms`].
    pub fn with_ttl_ms(mut self, ttl_ms: Option<u64>) -> Self {
        self.ttl_ms = ttl_ms;
        self
    }

    /// Sets [`HistoryConfig::max_replay`].
    pub fn with_max_replay(mut self, publications: usize) -> Self {
        self.max_replay = publications;
        self
    }

    /// The number of live publications a [`CatchUp`] should buffer while a
    /// history fetch is in flight: [`HistoryConfig::max_replay`] plus
    /// [`CATCH_UP_SLACK`].
    pub fn catch_up_buffer(&self) -> usize {
        self.max_replay.saturating_add(CATCH_UP_SLACK)
    }
}

/// The answer to "what did I miss since this position?".
///
/// [`History::recover`] produces it for the in-process history; a shared
/// store (such as a Redis backplane) builds it from its own answer, and
/// [`CatchUp::on_history`] consumes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recovery<T> {
    /// Everything published after the client's position, in order.
    Recovered {
        /// The missed publications: offsets from the client's offset + 1
        /// up to `current`, in order (empty when nothing was missed).
        items: Vec<(StreamPosition, T)>,
        /// The room's latest position when the history was read.
        current: StreamPosition,
    },
    /// What the client missed is no longer (or never was) available: a
    /// different epoch, publications already evicted by size or age, a
    /// position ahead of the room, or more than
    /// [`HistoryConfig::max_replay`] publications missed.
    NotRecovered {
        /// The room's latest position when the history was read.
        current: StreamPosition,
    },
}

impl<T> Recovery<T> {
    /// The room's latest position when the history was read.
    pub fn current(&self) -> StreamPosition {
        match self {
            Recovery::Recovered { current, .. } | Recovery::NotRecovered { current } => *current,
        }
    }

    /// Whether the missed publications are all there.
    pub fn is_recovered(&self) -> bool {
        matches!(self, Recovery::Recovered { .. })
    }
}

/// One stored publication.
#[derive(Clone, Debug)]
struct Entry<T> {
    offset: u64,
    published_ms: u64,
    item: T,
}

/// The bounded in-memory history of one room (the in-process backplane's;
/// a shared store keeps its own).
///
/// Holds at most [`HistoryConfig::size`] publications; those older than
/// [`HistoryConfig::ttl_ms`] are dropped on the next call that passes a
/// time. Offsets keep counting when entries are evicted, so
/// [`History::top`] always names the latest publication.
#[derive(Clone, Debug)]
pub struct History<T> {
    config: HistoryConfig,
    epoch: u64,
    top: u64,
    entries: VecDeque<Entry<T>>,
}

impl<T: Clone> History<T> {
    /// An empty history in `epoch`. Pick a new epoch (random, or from a
    /// counter that survives restarts) every time a room's history starts
    /// empty, so that clients holding positions from before cannot mistake
    /// the new offsets for the old ones.
    pub fn new(config: HistoryConfig, epoch: u64) -> History<T> {
        History {
            config,
            epoch,
            top: 0,
            entries: VecDeque::new(),
        }
    }

    /// The settings this history applies.
    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// The epoch of this history.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The latest position: the last publication's, or offset 0 when
    /// nothing was published in this epoch.
    pub fn top(&self) -> StreamPosition {
        StreamPosition::new(self.epoch, self.top)
    }

    /// Publications held right now (expired ones may still count until the
    /// next call that passes a time).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no publication is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records a publication made at `now_ms` and returns its position;
    /// send the item to live subscribers with this position.
    pub fn append(&mut self, item: T, now_ms: u64) -> StreamPosition {
        self.top = self.top.saturating_add(1);
        self.prune(now_ms);
        if self.config.size > 0 {
            if self.entries.len() >= self.config.size {
                self.entries.pop_front();
            }
            self.entries.push_back(Entry {
                offset: self.top,
                published_ms: now_ms,
                item,
            });
        }
        self.top()
    }

    /// Drops the publications that are expired at `now_ms`.
    pub fn prune(&mut self, now_ms: u64) {
        let Some(ttl) = self.config.ttl_ms else {
            return;
        };
        // Entries are in publication order, so the oldest expire first (a
        // clock that went backwards only delays pruning).
        while self
            .entries
            .front()
            .is_some_and(|e| e.published_ms.saturating_add(ttl) <= now_ms)
        {
            self.entries.pop_front();
        }
    }

    /// What a client whose last publication was `since` missed, at
    /// `now_ms`: every publication after it (cloned), or
    /// [`Recovery::NotRecovered`] when that is impossible (see there).
    /// A client at [`History::top`] is recovered with nothing to replay,
    /// even when the history holds nothing.
    pub fn recover(&mut self, since: StreamPosition, now_ms: u64) -> Recovery<T> {
        self.prune(now_ms);
        let current = self.top();
        if since.epoch != self.epoch || since.offset > self.top {
            return Recovery::NotRecovered { current };
        }
        let missed = self.top - since.offset;
        if missed > self.config.max_replay as u64 {
            return Recovery::NotRecovered { current };
        }
        let oldest = self.entries.front().map_or(self.top + 1, |e| e.offset);
        if since.offset + 1 < oldest {
            return Recovery::NotRecovered { current };
        }
        // Offsets are consecutive, so the first missed entry's index is known.
        let skip = (since.offset + 1 - oldest) as usize;
        let items = self
            .entries
            .iter()
            .skip(skip)
            .map(|e| (StreamPosition::new(self.epoch, e.offset), e.item.clone()))
            .collect();
        Recovery::Recovered { items, current }
    }
}

/// What a [`CatchUp`] hands on, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatchUpEvent<T> {
    /// Deliver this publication. Within an epoch each one's offset is one
    /// more than the position before it, unless a
    /// [`CatchUpEvent::NotRecovered`] came in between.
    Publication(StreamPosition, T),
    /// Publications before `current` were lost for this client: it must
    /// reload its state (as of `current`) and then apply the publications
    /// that follow, which continue from `current`. Send `current` to the
    /// client as its new position.
    NotRecovered {
        /// The position the stream continues from.
        current: StreamPosition,
    },
    /// The catch-up after a reconnect is complete and nothing was lost:
    /// the client got everything it missed, up to `current`, and
    /// continues live.
    Recovered {
        /// The client's position now.
        current: StreamPosition,
    },
}

/// Where a [`CatchUp`] stands.
#[derive(Clone, Debug)]
enum Phase<T> {
    /// The history fetch is in flight; live publications wait here.
    Fetching {
        buffer: VecDeque<(StreamPosition, T)>,
    },
    /// Publications pass straight through.
    Live,
}

/// One subscriber's merge of the history fetched after a reconnect with the
/// live publications it subscribed to just before.
///
/// Inputs: [`CatchUp::on_live`] for every live publication from the moment
/// of subscribing, and [`CatchUp::on_history`] once with the fetched
/// [`Recovery`]. Output: [`CatchUp::poll_event`], to drain after every
/// input. The events never repeat a publication, never reorder them, and
/// announce every gap with [`CatchUpEvent::NotRecovered`].
///
/// While the fetch is in flight at most `buffer_limit` live publications
/// are held; when more arrive the oldest are dropped, which is harmless as
/// long as the history covers them and otherwise reported as a gap.
#[derive(Clone, Debug)]
pub struct CatchUp<T> {
    phase: Phase<T>,
    buffer_limit: usize,
    /// The position of the last event queued: duplicates and gaps are
    /// judged against it.
    tail: Option<StreamPosition>,
    /// The position of the last event handed out by `poll_event`.
    delivered: Option<StreamPosition>,
    /// Gaps queued so far.
    gaps: u64,
    events: VecDeque<CatchUpEvent<T>>,
}

impl<T> CatchUp<T> {
    /// A subscriber resuming after `since` (the position of the last
    /// publication it got): buffers live publications until
    /// [`CatchUp::on_history`] brings the history fetched after
    /// subscribing. With `since` `None` the subscriber starts live: no
    /// fetch is needed, and it takes publications from the first that
    /// arrives. `buffer_limit` is usually
    /// [`HistoryConfig::catch_up_buffer`]; values below 1 become 1, because
    /// the newest live publication must be kept to notice that older ones
    /// were dropped.
    pub fn new(since: Option<StreamPosition>, buffer_limit: usize) -> CatchUp<T> {
        let phase = match since {
            Some(_) => Phase::Fetching {
                buffer: VecDeque::new(),
            },
            None => Phase::Live,
        };
        CatchUp {
            phase,
            buffer_limit: buffer_limit.max(1),
            tail: since,
            delivered: since,
            gaps: 0,
            events: VecDeque::new(),
        }
    }

    /// A new subscriber (no position) that wants one before the first
    /// publication arrives, so that it can resume even if it disconnects
    /// before anything is published: buffers live publications until
    /// [`CatchUp::on_history`] brings the room's current position (any
    /// [`Recovery`] read after subscribing; its items are ignored). Then
    /// queues [`CatchUpEvent::Recovered`] with that position, after the
    /// live publications newer than it.
    pub fn from_current(buffer_limit: usize) -> CatchUp<T> {
        CatchUp {
            phase: Phase::Fetching {
                buffer: VecDeque::new(),
            },
            ..CatchUp::new(None, buffer_limit)
        }
    }

    /// Whether the history is still awaited (live publications are being
    /// buffered).
    pub fn is_fetching(&self) -> bool {
        matches!(self.phase, Phase::Fetching { .. })
    }

    /// The position of the last publication (or gap, or recovery) handed
    /// out by [`CatchUp::poll_event`], starting with the `since` it was
    /// created with: what the client would reconnect with.
    pub fn position(&self) -> Option<StreamPosition> {
        self.delivered
    }

    /// A live publication at `pos`, in the order the room published them.
    /// Buffered while the history is fetched; afterwards queued for
    /// [`CatchUp::poll_event`] unless it is a duplicate, preceded by
    /// [`CatchUpEvent::NotRecovered`] when publications are missing before
    /// it (its offset jumps or its epoch changed).
    pub fn on_live(&mut self, pos: StreamPosition, item: T) {
        match &mut self.phase {
            Phase::Fetching { buffer } => {
                if buffer.len() >= self.buffer_limit {
                    buffer.pop_front();
                }
                buffer.push_back((pos, item));
            }
            Phase::Live => self.accept(pos, item),
        }
    }

    /// The history fetched after subscribing, for the position this
    /// catch-up was created with (for [`CatchUp::from_current`], only the
    /// room's current position counts). Queues the missed publications, then the
    /// buffered live ones that are new, then [`CatchUpEvent::Recovered`] if
    /// nothing was lost or [`CatchUpEvent::NotRecovered`] where something
    /// was. Afterwards live publications pass straight through. Ignored
    /// unless the history is awaited ([`CatchUp::is_fetching`]).
    pub fn on_history(&mut self, recovery: Recovery<T>) {
        let Phase::Fetching { buffer } = std::mem::replace(&mut self.phase, Phase::Live) else {
            return;
        };
        let gaps_before = self.gaps;
        match recovery {
            // A new subscriber missed nothing: it starts after `current`.
            _ if self.tail.is_none() => self.tail = Some(recovery.current()),
            Recovery::Recovered { items, current } => {
                for (pos, item) in items {
                    self.accept(pos, item);
                }
                // The history must reach `current`: a store that answered
                // with less, or a stream that moved back, lost something.
                let reached = self
                    .tail
                    .is_some_and(|t| t.epoch == current.epoch && t.offset == current.offset);
                if !reached {
                    self.gap(current);
                }
            }
            Recovery::NotRecovered { current } => self.gap(current),
        }
        for (pos, item) in buffer {
            self.accept(pos, item);
        }
        if self.gaps == gaps_before {
            let current = self.tail.expect("set above for a new subscriber");
            self.events.push_back(CatchUpEvent::Recovered { current });
        }
    }

    /// The next event to deliver, in order; `None` when all were taken.
    /// Call after every [`CatchUp::on_live`] and [`CatchUp::on_history`].
    pub fn poll_event(&mut self) -> Option<CatchUpEvent<T>> {
        let event = self.events.pop_front()?;
        self.delivered = Some(match &event {
            CatchUpEvent::Publication(pos, _) => *pos,
            CatchUpEvent::NotRecovered { current } | CatchUpEvent::Recovered { current } => {
                *current
            }
        });
        Some(event)
    }

    /// Queues a gap: the stream continues from `current`.
    fn gap(&mut self, current: StreamPosition) {
        self.events
            .push_back(CatchUpEvent::NotRecovered { current });
        self.tail = Some(current);
        self.gaps += 1;
    }

    /// Queues `item` unless it is a duplicate, after a gap if publications
    /// are missing before it.
    fn accept(&mut self, pos: StreamPosition, item: T) {
        if let Some(tail) = self.tail {
            if tail.epoch == pos.epoch {
                if pos.offset <= tail.offset {
                    return;
                }
                if pos.offset > tail.offset + 1 {
                    self.gap(pos.previous());
                }
            } else {
                self.gap(pos.previous());
            }
        }
        self.events.push_back(CatchUpEvent::Publication(pos, item));
        self.tail = Some(pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: u64 = 0xabc;

    fn pos(offset: u64) -> StreamPosition {
        StreamPosition::new(EPOCH, offset)
    }

    fn history(size: usize, ttl_ms: Option<u64>, max_replay: usize) -> History<u64> {
        let config = HistoryConfig::default()
            .with_size(size)
            .with_ttl_ms(ttl_ms)
            .with_max_replay(max_replay);
        History::new(config, EPOCH)
    }

    /// Publishes offsets 1..=n, item = offset, at time = 10 * offset.
    fn publish(h: &mut History<u64>, n: u64) {
        for i in 1..=n {
            assert_eq!(h.append(i, 10 * i), pos(i));
        }
    }

    fn offsets(r: &Recovery<u64>) -> Option<Vec<u64>> {
        match r {
            Recovery::Recovered { items, .. } => {
                for (p, item) in items {
                    assert_eq!((p.epoch, p.offset), (EPOCH, *item));
                }
                Some(items.iter().map(|(_, i)| *i).collect())
            }
            Recovery::NotRecovered { .. } => None,
        }
    }

    fn drain(c: &mut CatchUp<u64>) -> Vec<CatchUpEvent<u64>> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    fn publication(offset: u64) -> CatchUpEvent<u64> {
        CatchUpEvent::Publication(pos(offset), offset)
    }

    #[test]
    fn position_text_round_trip() {
        let p = StreamPosition::new(0x1f3a, 42);
        assert_eq!(p.to_string(), "42_1f3a");
        assert_eq!("42_1f3a".parse(), Ok(p));
        let max = StreamPosition::new(u64::MAX, u64::MAX);
        assert_eq!(max.to_string().parse(), Ok(max));
        assert_eq!(max.to_string().len(), MAX_POSITION_LEN);
        assert_eq!("0_0".parse(), Ok(StreamPosition::new(0, 0)));
    }

    #[test]
    fn malformed_positions_are_errors() {
        use PositionParseError::*;
        let cases = [
            ("", MissingSeparator),
            ("42", MissingSeparator),
            ("_", InvalidOffset),
            ("_1f", InvalidOffset),
            ("42_", InvalidEpoch),
            ("+42_1f", InvalidOffset),
            ("-1_1f", InvalidOffset),
            ("42_+1f", InvalidEpoch),
            ("4 2_1f", InvalidOffset),
            ("42_1f_3", InvalidEpoch),
            ("42_0x1f", InvalidEpoch),
            ("42_g", InvalidEpoch),
            ("٤٢_1f", InvalidOffset),
            ("18446744073709551616_1", InvalidOffset),
            ("1_10000000000000000", InvalidEpoch),
            ("99999999999999999999_ffffffffffffffff", InvalidOffset),
            ("000000000000000000001_ffffffffffffffff", TooLong),
        ];
        for (text, err) in cases {
            assert_eq!(text.parse::<StreamPosition>(), Err(err), "{text:?}");
        }
        let long = "1".repeat(10_000) + "_1";
        assert_eq!(long.parse::<StreamPosition>(), Err(TooLong));
    }

    #[test]
    fn empty_history() {
        let mut h = history(4, None, 10);
        assert_eq!(h.top(), pos(0));
        assert!(h.is_empty());
        assert_eq!(offsets(&h.recover(pos(0), 0)), Some(vec![]));
        assert_eq!(
            h.recover(pos(1), 0),
            Recovery::NotRecovered { current: pos(0) }
        );
        // No history kept at all: only a client that missed nothing recovers.
        let mut none = history(0, None, 10);
        publish(&mut none, 3);
        assert!(none.is_empty());
        assert_eq!(none.top(), pos(3));
        assert_eq!(offsets(&none.recover(pos(3), 99)), Some(vec![]));
        assert_eq!(none.recover(pos(2), 99).current(), pos(3));
        assert!(!none.recover(pos(2), 99).is_recovered());
    }

    #[test]
    fn eviction_by_size_at_the_exact_boundary() {
        let mut h = history(3, None, 10);
        publish(&mut h, 5);
        assert_eq!(h.len(), 3); // holds 3, 4, 5
        assert_eq!(offsets(&h.recover(pos(2), 0)), Some(vec![3, 4, 5]));
        assert_eq!(offsets(&h.recover(pos(4), 0)), Some(vec![5]));
        assert_eq!(offsets(&h.recover(pos(5), 0)), Some(vec![]));
        // Publication 2 is gone: a client at 1 missed it.
        assert_eq!(
            h.recover(pos(1), 0),
            Recovery::NotRecovered { current: pos(5) }
        );
        assert_eq!(h.recover(pos(0), 0).current(), pos(5));
    }

    #[test]
    fn ttl_expiry_with_a_fake_clock() {
        // Publications at 10, 20, 30 ms, each kept 25 ms.
        let mut h = history(10, Some(25), 10);
        publish(&mut h, 3);
        assert_eq!(offsets(&h.recover(pos(0), 34)), Some(vec![1, 2, 3]));
        // Publication 1 (at 10) expires at 35 exactly.
        assert!(!h.recover(pos(0), 35).is_recovered());
        assert_eq!(offsets(&h.recover(pos(1), 35)), Some(vec![2, 3]));
        assert_eq!(h.len(), 2);
        // All gone at 55: only an up-to-date client recovers.
        assert!(!h.recover(pos(2), 55).is_recovered());
        assert_eq!(offsets(&h.recover(pos(3), 55)), Some(vec![]));
        assert!(h.is_empty());
        // Appending prunes too, so memory follows the clock.
        let mut h = history(10, Some(5), 10);
        publish(&mut h, 4);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn another_epoch_is_never_recovered() {
        let mut h = history(10, None, 10);
        publish(&mut h, 3);
        let old = StreamPosition::new(EPOCH + 1, 3);
        assert_eq!(
            h.recover(old, 0),
            Recovery::NotRecovered { current: pos(3) }
        );
        let old = StreamPosition::new(EPOCH + 1, 0);
        assert!(!h.recover(old, 0).is_recovered());
    }

    #[test]
    fn since_in_the_future_is_not_recovered() {
        let mut h = history(10, None, 10);
        publish(&mut h, 3);
        assert_eq!(
            h.recover(pos(4), 0),
            Recovery::NotRecovered { current: pos(3) }
        );
        assert!(!h.recover(pos(u64::MAX), 0).is_recovered());
    }

    #[test]
    fn max_replay_caps_the_recovery() {
        let mut h = history(10, None, 3);
        publish(&mut h, 6);
        assert_eq!(offsets(&h.recover(pos(3), 0)), Some(vec![4, 5, 6]));
        assert!(!h.recover(pos(2), 0).is_recovered());
        let mut zero = history(10, None, 0);
        publish(&mut zero, 2);
        assert!(!zero.recover(pos(1), 0).is_recovered());
        assert_eq!(offsets(&zero.recover(pos(2), 0)), Some(vec![]));
    }

    #[test]
    fn catch_up_drops_duplicates_between_history_and_buffered_live() {
        let mut h = history(10, None, 10);
        publish(&mut h, 2);
        // The client got 1; it subscribes, 3 and 4 are published, the
        // history is read (up to 4), 5 is published.
        let mut c = CatchUp::new(Some(pos(1)), 10);
        assert!(c.is_fetching());
        for i in 3..=4 {
            h.append(i, 0);
            c.on_live(pos(i), i);
        }
        let recovery = h.recover(pos(1), 0);
        h.append(5, 0);
        c.on_live(pos(5), 5);
        assert!(drain(&mut c).is_empty(), "nothing before the history");
        assert_eq!(c.position(), Some(pos(1)));
        c.on_history(recovery);
        assert!(!c.is_fetching());
        let expected = vec![
            publication(2),
            publication(3),
            publication(4),
            publication(5),
            CatchUpEvent::Recovered { current: pos(5) },
        ];
        assert_eq!(drain(&mut c), expected);
        assert_eq!(c.position(), Some(pos(5)));
        // Live publications pass straight through; repeats are dropped.
        c.on_live(pos(5), 5);
        c.on_live(pos(6), 6);
        c.on_live(pos(6), 6);
        assert_eq!(drain(&mut c), vec![publication(6)]);
        assert_eq!(c.position(), Some(pos(6)));
    }

    #[test]
    fn catch_up_reports_a_gap_in_live_delivery() {
        let mut c = CatchUp::new(None, 0);
        assert!(!c.is_fetching());
        assert_eq!(c.position(), None);
        c.on_live(pos(7), 7);
        c.on_live(pos(8), 8);
        c.on_live(pos(11), 11);
        let expected = vec![
            publication(7),
            publication(8),
            CatchUpEvent::NotRecovered { current: pos(10) },
            publication(11),
        ];
        assert_eq!(drain(&mut c), expected);
        // A new epoch is a gap even when its offsets look contiguous.
        let next = StreamPosition::new(EPOCH + 1, 12);
        c.on_live(next, 12);
        let expected = vec![
            CatchUpEvent::NotRecovered {
                current: StreamPosition::new(EPOCH + 1, 11),
            },
            CatchUpEvent::Publication(next, 12),
        ];
        assert_eq!(drain(&mut c), expected);
        assert_eq!(c.position(), Some(next));
    }

    #[test]
    fn catch_up_not_recovered_continues_live() {
        let mut c = CatchUp::new(Some(StreamPosition::new(1, 5)), 10);
        c.on_live(pos(3), 3);
        c.on_live(pos(4), 4);
        c.on_history(Recovery::NotRecovered { current: pos(3) });
        let expected = vec![
            CatchUpEvent::NotRecovered { current: pos(3) },
            publication(4),
        ];
        assert_eq!(drain(&mut c), expected);
        // A second answer is ignored.
        c.on_history(Recovery::NotRecovered { current: pos(9) });
        assert!(drain(&mut c).is_empty());
    }

    #[test]
    fn catch_up_buffer_overflow_is_a_gap_only_when_history_misses_it() {
        // Buffer of 2: the live 3, 4, 5, 6 arrive during the fetch; 3 and 4
        // are dropped.
        let live = |c: &mut CatchUp<u64>| (3..=6).for_each(|i| c.on_live(pos(i), i));
        // The history reached 4: nothing is lost.
        let mut c = CatchUp::new(Some(pos(2)), 2);
        live(&mut c);
        c.on_history(Recovery::Recovered {
            items: vec![(pos(3), 3), (pos(4), 4)],
            current: pos(4),
        });
        let events = drain(&mut c);
        assert_eq!(events[..4], [3, 4, 5, 6].map(publication));
        assert_eq!(events[4..], [CatchUpEvent::Recovered { current: pos(6) }]);
        // The history reached only 3: publication 4 is lost.
        let mut c = CatchUp::new(Some(pos(2)), 2);
        live(&mut c);
        c.on_history(Recovery::Recovered {
            items: vec![(pos(3), 3)],
            current: pos(3),
        });
        let expected = vec![
            publication(3),
            CatchUpEvent::NotRecovered { current: pos(4) },
            publication(5),
            publication(6),
        ];
        assert_eq!(drain(&mut c), expected);
    }

    #[test]
    fn catch_up_from_current_starts_at_the_fetched_position() {
        let mut h = history(10, None, 10);
        publish(&mut h, 2);
        let mut c = CatchUp::from_current(10);
        assert!(c.is_fetching());
        c.on_live(pos(3), 3);
        let top = h.append(3, 0);
        let recovery = h.recover(top, 0);
        h.append(4, 0);
        c.on_live(pos(4), 4);
        c.on_history(recovery);
        let expected = vec![publication(4), CatchUpEvent::Recovered { current: pos(4) }];
        assert_eq!(drain(&mut c), expected);
        // Nothing published yet: the position still comes from the history.
        let mut c = CatchUp::<u64>::from_current(10);
        c.on_history(Recovery::NotRecovered { current: pos(0) });
        let expected = vec![CatchUpEvent::Recovered { current: pos(0) }];
        assert_eq!(drain(&mut c), expected);
        assert_eq!(c.position(), Some(pos(0)));
    }

    #[test]
    fn catch_up_distrusts_a_short_history_answer() {
        // The store claims 5 as its top but replays only up to 4.
        let mut c = CatchUp::new(Some(pos(2)), 10);
        c.on_history(Recovery::Recovered {
            items: vec![(pos(3), 3), (pos(4), 4)],
            current: pos(5),
        });
        let expected = vec![
            publication(3),
            publication(4),
            CatchUpEvent::NotRecovered { current: pos(5) },
        ];
        assert_eq!(drain(&mut c), expected);
        assert_eq!(c.position(), Some(pos(5)));
    }
}
