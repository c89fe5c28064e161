//! A busy hosted zone: Route53 logs every query that reaches the zone, not only the
//! leafs'. This writes such traffic into a query-log group the way Route53 delivers it:
//! many edge streams, names of the zone that are no leaf (in randomised letter case, as
//! resolvers send them), several query types, each line delivered up to `max_delay`
//! after its own time.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::types::InputLogEvent;

use super::{now_ms, query_line, Rng, World};

/// What to write.
#[derive(Debug, Clone)]
pub struct Zone {
    /// The zone's apex; unrelated names are made under it.
    pub apex: String,
    /// Its id, as the lines carry it.
    #[allow(clippy::struct_field_names, reason = "a hosted zone's id is called zone_id everywhere in Route53")]
    pub zone_id: String,
    /// Lines per second.
    pub lines_per_second: usize,
    /// Edge streams the lines come from.
    pub streams: usize,
    /// Each line is delivered between 0 and this long after its own time.
    pub max_delay: Duration,
}

/// A writer running in the background until dropped or stopped.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    /// Lines written so far.
    pub written: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    /// Stops writing and waits for the writer; the number of lines written.
    pub async fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = (&mut { self.task }).await;
        self.written.load(Ordering::Relaxed)
    }
}

/// The edge stream names of a busy zone.
pub fn stream_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("EDGE{i:02}")).collect()
}

/// Creates the streams of `zone` in `group` (the group must exist).
pub async fn create_streams(world: &World, group: &str, zone: &Zone) {
    for s in stream_names(zone.streams) {
        let _ = world.logs.create_log_stream().log_group_name(group).log_stream_name(&s).send().await;
    }
}

/// A name of the zone that is no leaf, in random letter case.
fn unrelated(rng: &mut Rng, apex: &str) -> (String, &'static str) {
    const LABELS: [&str; 6] = ["www", "api", "mail", "cdn", "shop", "status"];
    const TYPES: [&str; 4] = ["A", "AAAA", "MX", "TXT"];
    let label = rng.pick(&LABELS);
    let name: String = format!("{label}.{apex}").chars().map(|c| if rng.next() < 0.5 { c.to_ascii_uppercase() } else { c }).collect();
    (name, *rng.pick(&TYPES))
}

/// Starts writing `zone`'s traffic into `group` (streams made by [`create_streams`]).
pub fn start(world: &World, group: &str, zone: &Zone, seed: u64) -> Traffic {
    let (logs, group, zone) = (world.logs.clone(), group.to_owned(), zone.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let (stop2, written2) = (Arc::clone(&stop), Arc::clone(&written));
    let task = tokio::spawn(async move {
        let mut rng = Rng::new(seed);
        let streams = stream_names(zone.streams);
        let tick = Duration::from_millis(200);
        let per_tick = (zone.lines_per_second / 5).max(1);
        let delay_ms = i64::try_from(zone.max_delay.as_millis()).unwrap_or(0);
        let mut next = tokio::time::Instant::now();
        while !stop2.load(Ordering::Relaxed) {
            // Each tick, a few edge streams deliver a batch, as Route53's edges do.
            let now = now_ms();
            let mut batches: Vec<Vec<(i64, String)>> = vec![Vec::new(); 4];
            for _ in 0..per_tick {
                let at = now - i64::try_from(rng.below(u64::try_from(delay_ms).unwrap_or(0) + 1)).unwrap_or(0);
                let (name, qtype) = unrelated(&mut rng, &zone.apex);
                batches[usize::try_from(rng.below(4)).unwrap()].push((at, query_line(at, &zone.zone_id, &name, qtype)));
            }
            for mut batch in batches.into_iter().filter(|b| !b.is_empty()) {
                batch.sort_by_key(|(at, _)| *at);
                let n = batch.len();
                let stream = rng.pick(&streams);
                let events = batch.into_iter().map(|(at, line)| InputLogEvent::builder().timestamp(at).message(line).build().unwrap());
                if logs.put_log_events().log_group_name(&group).log_stream_name(stream).set_log_events(Some(events.collect())).send().await.is_ok() {
                    written2.fetch_add(n, Ordering::Relaxed);
                }
            }
            next += tick;
            tokio::time::sleep_until(next).await;
        }
    });
    Traffic { stop, written, task }
}
