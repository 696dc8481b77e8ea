//! Lesson 04, `examples/04_backpressure.rs`: one client stops reading, another
//! keeps up.
//!
//! Each test stalls one client (it never reads, and has a 4 KiB receive buffer
//! and small TCP segments: `Running::connect_small_buffer`)
//! while a second client follows a fixed number of readings. Then it checks, per
//! policy, that the server's memory stayed bounded, that the fast client was not
//! held back, and that every reading a client did not get was announced to it.
//!
//! The fast client is a [`Drain`]: while the producer runs it only moves bytes
//! into memory, so it keeps up however busy the machine is, and the tally reads
//! its messages afterwards.

use ws_harness as common;

use common::{Client, Drain, Running, next};
use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Readings per second: the server, built without optimisations, needs a small
/// share of a core to send them to two clients.
const RATE: &str = "5000";
/// How many readings a client may fall behind: 0.8 s at `RATE`, a margin for
/// the server's own tasks on a busy machine.
const QUEUE: &str = "4096";
/// Readings the fast client follows before the memory baseline: enough to fill
/// the ring buffer.
const WARM_UP: u64 = 4_096;
/// Readings the fast client follows while the slow one is stalled: four times
/// what the buffers between the server and the stalled client hold (about
/// 2,600 readings with its small segments) and `QUEUE`.
const STALL: u64 = 30_000;
/// Growth allowed in the server's resident memory during the stall. The bounded
/// queue takes a few hundred KiB; queueing all the stalled client's readings
/// grows the server by about 3 MiB.
const MAX_GROWTH_KIB: u64 = 1536;

// ANCHOR: tally
/// A client's view of the feed. Each reading must follow the one before it,
/// unless a `missed` message announced the gap, and then exactly that gap.
#[derive(Debug, Default)]
struct Tally {
    last_seq: Option<u64>,
    announced: u64,
    readings: u64,
    missed: u64,
    /// The first message of each type, for the wire-format snapshots.
    first_reading: Option<Value>,
    first_missed: Option<Value>,
}

impl Tally {
    fn take(&mut self, message: &Message) {
        let Message::Text(text) = message else {
            panic!("the feed sends text frames, got {message:?}")
        };
        let json: Value = serde_json::from_str(text).expect("JSON");
        match json["type"].as_str() {
            Some("reading") => {
                let seq = json["seq"].as_u64().expect("a sequence number");
                if let Some(last) = self.last_seq {
                    assert_eq!(
                        seq,
                        last + 1 + self.announced,
                        "an unannounced gap or a repeat"
                    );
                }
                self.last_seq = Some(seq);
                self.announced = 0;
                self.readings += 1;
                self.first_reading.get_or_insert(json);
            }
            Some("missed") => {
                let count = json["count"].as_u64().expect("a count");
                assert!(count > 0, "{json}");
                self.announced += count;
                self.missed += count;
                self.first_missed.get_or_insert(json);
            }
            _ => panic!("unexpected message {json}"),
        }
    }

    // ANCHOR_END: tally

    /// How far the feed has advanced for this client: readings received or
    /// announced missed.
    fn covered(&self) -> u64 {
        self.readings + self.missed
    }

    /// Reads until the feed has advanced by `readings` readings (received or
    /// missed).
    async fn read(&mut self, feed: &mut Drain, readings: u64) {
        let target = self.covered() + readings;
        while self.covered() < target {
            let left = usize::try_from(target - self.covered()).expect("small");
            for message in feed.messages(left).await {
                self.take(&message);
            }
        }
    }
}

/// Starts the server, stalls one client, and lets another read `STALL` readings.
async fn stall_one_client(
    policy: &str,
    extra: &[&str],
) -> (Running, Client, Drain, Tally) {
    // One stalled scenario at a time: the tests need not compete for the
    // cores.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> =
        tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;

    let mut args = vec!["--policy", policy, "--rate", RATE, "--queue", QUEUE];
    args.extend_from_slice(extra);
    let server = Running::start("04_backpressure", &args).await;
    let slow = server.connect_small_buffer().await;
    let mut fast = Drain::connect(server.addr).await;
    let mut fast_tally = Tally::default();
    fast_tally.read(&mut fast, WARM_UP).await;
    let before = server.rss_kib();

    fast_tally.read(&mut fast, STALL).await;

    let growth = server.rss_kib().saturating_sub(before);
    eprintln!("{policy}: resident memory grew by {growth} KiB during the stall");
    assert!(
        growth < MAX_GROWTH_KIB,
        "the server grew by {growth} KiB while a client was stalled"
    );
    (server, slow, fast, fast_tally)
}

// ANCHOR: drop_oldest_test
#[tokio::test]
async fn drop_oldest_bounds_memory_and_tells_the_slow_client_what_it_missed() {
    let (_server, mut slow, _fast, fast) =
        stall_one_client("drop-oldest", &[]).await;
    assert_eq!(fast.missed, 0, "the fast client kept up and lost nothing");

    // Now the slow client reads: what the buffers held, then the news of what it
    // missed, then the feed again, with every gap accounted for by the tally.
    let mut slow_tally = Tally::default();
    let mut after_gap = 0;
    for _ in 0..1_000_000 {
        let message = next(&mut slow).await.expect("the feed goes on");
        slow_tally.take(&message);
        if slow_tally.missed > 0 {
            after_gap += 1;
            if after_gap > 100 {
                break;
            }
        }
    }
    assert!(
        slow_tally.missed > 0,
        "the slow client was told what it missed"
    );

    // The wire format, pinned: what changes from run to run is redacted.
    insta::assert_json_snapshot!("reading", slow_tally.first_reading, {
        ".seq" => "[seq]", ".sensor" => "[sensor]", ".value" => "[value]"
    });
    insta::assert_json_snapshot!("missed", slow_tally.first_missed, {
        ".count" => "[count]"
    });
}
// ANCHOR_END: drop_oldest_test

#[tokio::test]
async fn latest_bounds_memory_and_skips_the_slow_client_to_the_newest() {
    let (server, mut slow, mut fast, mut fast_tally) =
        stall_one_client("latest", &[]).await;

    // The slow client skips ahead: a `missed` message, then a reading at least as
    // new as the one the fast client has now. The tally checks that the skip is
    // exactly announced.
    let newest = fast_tally.last_seq.expect("the fast client has readings");
    let mut slow_tally = Tally::default();
    for _ in 0..1_000_000 {
        let message = next(&mut slow).await.expect("the feed goes on");
        slow_tally.take(&message);
        if slow_tally.missed > 0
            && slow_tally.announced == 0
            && slow_tally.last_seq >= Some(newest)
        {
            break;
        }
    }
    assert!(
        slow_tally.missed > 0,
        "the slow client was told what it missed"
    );
    assert!(slow_tally.last_seq >= Some(newest));

    // The fast client is still served, with any skips announced.
    fast_tally.read(&mut fast, 1_000).await;
    drop(server);
}

/// When the stalled client of the `disconnect` tests reads again.
enum ReadAgain {
    /// As soon as the stall is over, long before its deadline runs out.
    AtOnce,
    /// Only once the server has dropped it (`/stats` counts one connection).
    WhenDropped,
}

/// The `disconnect` policy with a stalled client: returns the slow client's tally
/// and the code of the Close frame it found after its readings, if any.
async fn disconnect_a_stalled_client(
    deadline: &str,
    read_again: ReadAgain,
) -> (Tally, Option<u16>) {
    let (server, mut slow, mut fast, mut fast_tally) =
        stall_one_client("disconnect", &["--deadline", deadline]).await;
    if let ReadAgain::WhenDropped = read_again {
        let what = "the stalled client is dropped";
        server.wait_for_stats(what, |s| s["connections"] == 1).await;
    }

    // The fast client lost nothing, before or after.
    fast_tally.read(&mut fast, 1_000).await;
    assert_eq!(fast_tally.missed, 0);

    // The slow client gets what the buffers held, never a `missed` message, and
    // then the end.
    let mut slow_tally = Tally::default();
    let mut close_code = None;
    for _ in 0..1_000_000 {
        match tokio::time::timeout(common::WAIT, slow.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                close_code = frame.map(|f| u16::from(f.code))
            }
            Ok(Some(Ok(message))) => slow_tally.take(&message),
            // Reset or closed: the server dropped it.
            Ok(Some(Err(_)) | None) => break,
            Err(_) => panic!("the slow client was never disconnected"),
        }
    }
    assert_eq!(slow_tally.missed, 0, "this policy never skips readings");
    (slow_tally, close_code)
}

#[tokio::test]
async fn disconnect_sends_1008_to_a_slow_client_that_reads_again_in_time() {
    // The stall outlasts what the buffers and the queue hold, so the server has
    // lost readings for this client; it reads again long before its 30 s are
    // up. Its buffers drain, the server's send goes through and finds the
    // client behind, and the Close has room.
    let (tally, close_code) =
        disconnect_a_stalled_client("30s", ReadAgain::AtOnce).await;
    assert!(tally.readings > 0);
    assert_eq!(close_code, Some(1008));
}

#[tokio::test]
async fn disconnect_drops_a_client_that_does_not_read_again() {
    // The client is still stalled when the 200 ms for the Close run out, and
    // the server drops it (`/stats`) without waiting for it. Whether the Close
    // found room in the kernel's buffers before that depends on the kernel,
    // which may make a little room even for a client that does not read (it
    // packs small segments together), so the test does not ask.
    let (tally, _close_code) =
        disconnect_a_stalled_client("200ms", ReadAgain::WhenDropped).await;
    assert!(tally.readings > 0);
}

#[tokio::test]
async fn bad_flags_are_refused_with_clear_messages() {
    let (status, _, stderr) =
        common::run_to_exit("04_backpressure", &["--policy", "pause"]).await;
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("[possible values: drop-oldest, latest, disconnect]"),
        "{stderr}"
    );
    for rate in ["0", "-5", "fast", "NaN"] {
        let (status, _, stderr) =
            common::run_to_exit("04_backpressure", &[&format!("--rate={rate}")])
                .await;
        assert_eq!(status.code(), Some(2), "--rate {rate}");
        assert!(stderr.contains("--rate"), "{stderr}");
    }
}
