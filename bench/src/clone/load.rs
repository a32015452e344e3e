//! The sessiond side of `clone-latency`: `clients` HTTP/1.1 keep-alive clients (one
//! shared reqwest client) alternating `GET /v1/sessions/{id}` and `POST /v1/sessions`
//! through a warm-up, an idle window, the clone of the source folder, and a second idle
//! window.

use reqwest::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::api::Server;
use super::stats::{window, Phase, PhaseCell, Sample, WindowFigure};
use crate::error::BenchError;

/// Sessions created at set-up, the targets of the clients' GETs.
pub const SETUP_SESSIONS: usize = 64;
/// The clone's target folder.
pub const TARGET: &str = "bench-copy";
/// Warm-up before the first window (run, not counted).
const WARMUP: Duration = Duration::from_secs(1);

/// What the run measured.
#[derive(Debug)]
pub struct LoadRun {
    /// Idle before, during the clone, idle after, idle pooled.
    pub windows: Vec<WindowFigure>,
    /// The clone's duration (the "during" window).
    pub clone_seconds: f64,
    /// Anything worth a note.
    pub notes: Vec<String>,
}

/// Kind 0 of a sample: a GET; kind 1: a POST.
const GET: u8 = 0;
const POST: u8 = 1;

async fn client(server: Arc<ClientCtx>, worker: usize, phase: PhaseCell) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut n: usize = 0;
    loop {
        let at = phase.get();
        if at == Phase::Stop {
            break;
        }
        let kind = if n % 2 == 0 { GET } else { POST };
        let started = Instant::now();
        let outcome = if kind == GET {
            let id = server
                .ids
                .get((worker + n / 2) % server.ids.len().max(1))
                .cloned()
                .unwrap_or_default();
            server
                .client
                .get(format!("{}/v1/sessions/{id}", server.base))
                .bearer_auth(&server.key)
                .send()
                .await
                .map(|r| (r.status(), r))
        } else {
            server
                .client
                .post(format!("{}/v1/sessions", server.base))
                .bearer_auth(&server.key)
                .json(&Server::session_body(&format!("lat-{worker}-{n}")))
                .send()
                .await
                .map(|r| (r.status(), r))
        };
        // The whole answer is read: a request ends with its body.
        let ok = match outcome {
            Ok((status, resp)) => {
                let read = resp.bytes().await.is_ok();
                let expected = if kind == GET {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                read && status == expected
            }
            Err(_) => false,
        };
        let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let window = Phase::of_op(at, phase.get());
        if window != Phase::Warmup {
            samples.push(Sample {
                phase: window,
                kind,
                ns,
                failed: !ok,
                retries: 0,
            });
        }
        n = n.wrapping_add(1);
    }
    samples
}

/// What every client shares.
#[derive(Debug)]
struct ClientCtx {
    client: reqwest::Client,
    base: String,
    key: String,
    ids: Vec<String>,
}

/// Set-up (the group, [`SETUP_SESSIONS`] sessions), then the clients through warm-up,
/// idle, the clone of `bench-src`, idle.
pub async fn run(
    server: &Server,
    clients: usize,
    idle: Duration,
    pending_timeout: u64,
) -> Result<LoadRun, BenchError> {
    server.create_group(pending_timeout).await?;
    let mut ids = Vec::with_capacity(SETUP_SESSIONS);
    for i in 0..SETUP_SESSIONS {
        ids.push(server.enqueue(&format!("setup-{i}")).await?);
    }
    for id in &ids {
        server.wait_visible(id).await?;
    }
    let ctx = Arc::new(ClientCtx {
        client: server.client.clone(),
        base: server.base.clone(),
        key: server.user_key.clone(),
        ids,
    });
    let phase = PhaseCell::default();
    phase.set(Phase::Warmup);
    let tasks: Vec<_> = (0..clients)
        .map(|w| tokio::spawn(client(ctx.clone(), w, phase.clone())))
        .collect();

    let driven = drive(server, &phase, idle).await;
    phase.set(Phase::Stop);
    let mut samples = Vec::new();
    for t in tasks {
        match t.await {
            Ok(s) => samples.extend(s),
            Err(e) => return Err(BenchError::Other(format!("an HTTP client task: {e}"))),
        }
    }
    let (before, clone_seconds, after) = driven?;
    let windows = vec![
        window(
            "idle, before the clone",
            before,
            &samples,
            &[Phase::IdleBefore],
        ),
        window(
            "during the clone",
            clone_seconds,
            &samples,
            &[Phase::During],
        ),
        window(
            "idle, after the clone",
            after,
            &samples,
            &[Phase::IdleAfter],
        ),
        window(
            "idle (before and after, pooled)",
            before + after,
            &samples,
            &[Phase::IdleBefore, Phase::IdleAfter],
        ),
    ];
    let mut notes = Vec::new();
    if let Some(during) = windows.get(1) {
        if during.ops < 1000 {
            notes.push(format!(
                "the clone took {clone_seconds:.2} s: its window holds only {} requests, so \
                 its p99 rests on {} of them",
                during.ops,
                during.ops.div_ceil(100)
            ));
        }
    }
    Ok(LoadRun {
        windows,
        clone_seconds,
        notes,
    })
}

/// The windows: warm-up, idle, the clone, idle; their lengths in seconds.
async fn drive(
    server: &Server,
    phase: &PhaseCell,
    idle: Duration,
) -> Result<(f64, f64, f64), BenchError> {
    tokio::time::sleep(WARMUP).await;
    eprintln!("clone-latency: idle window ({:.1} s)", idle.as_secs_f64());
    phase.set(Phase::IdleBefore);
    let t = Instant::now();
    tokio::time::sleep(idle).await;
    let before = t.elapsed().as_secs_f64();

    eprintln!("clone-latency: cloning");
    phase.set(Phase::During);
    let t = Instant::now();
    let started = server.start_clone("bench-src", TARGET).await?;
    let bar = crate::progress::bar(0, "clone");
    let done = server
        .wait_task(started.task_id, Duration::from_millis(20), Some(&bar))
        .await;
    let clone_seconds = t.elapsed().as_secs_f64();
    phase.set(Phase::IdleAfter);
    bar.finish_and_clear();
    done?;

    eprintln!(
        "clone-latency: clone done in {clone_seconds:.2} s; idle window ({:.1} s)",
        idle.as_secs_f64()
    );
    let t = Instant::now();
    tokio::time::sleep(idle).await;
    let after = t.elapsed().as_secs_f64();
    Ok((before, clone_seconds, after))
}
