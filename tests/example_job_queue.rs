//! The `job_queue` example is real: a typed protocol with streaming calls,
//! run against a real server on loopback: a job followed to its end, one
//! cancelled by dropping its call (the job's end pushed back as proof the
//! work stopped), a deadline that stops a job, a slow follower kept to its
//! credit, both streams at once, and metadata that reaches the handler.

#[path = "../examples/job_queue.rs"]
mod job_queue;

use job_queue::{Event, JobsClient, JobsProtocol, JobsRequest, JobsServer};
use rust_tcp::protocol::v2::CallStatus;
use rust_tcp::typed::{CallError, Protocol, TypedPushed};
use rust_tcp::{CallOptions, ClientConfig, ClientError, Server, ServerConfig};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn the_job_queue_example_works() {
    let seen = job_queue::demo().await.unwrap();
    assert_eq!(
        seen,
        [
            "job 0: job line 0",
            "job 0: job line 1",
            "job 0: job line 2",
            "job 1: job line 0, then cancelled",
            "pushed: job 0 finished",
            "pushed: job 1 cancelled",
            "Counted { started: 2, finished: 1, cancelled: 1, trace: None }",
        ]
    );
}

async fn serve() -> (String, tokio_util::sync::CancellationToken) {
    let config = ServerConfig::default().app_protocol(JobsProtocol::app_protocol());
    let server = Server::bind("127.0.0.1:0", config).await.unwrap();
    let addr = server.local_addr().to_string();
    let stop = tokio_util::sync::CancellationToken::new();
    let service = JobsServer::new(job_queue::Queue::default()).into_service();
    tokio::spawn(server.run(service, stop.clone().cancelled_owned()));
    (addr, stop)
}

async fn ended(events: &mut rust_tcp::typed::Events<JobsProtocol>) -> Event {
    match tokio::time::timeout(PATIENCE, events.recv()).await.unwrap() {
        Some(TypedPushed::Event(e)) => e,
        other => panic!("expected a job's end, got {other:?}"),
    }
}

#[tokio::test]
async fn a_deadline_stops_the_job_and_metadata_reaches_the_handler() {
    let (addr, stop) = serve().await;
    let jobs = JobsClient::connect(&addr, ClientConfig::default().name("t"))
        .await
        .unwrap();
    let mut events = jobs.events().unwrap();
    let options = CallOptions::new().deadline(Some(Duration::from_millis(120)));
    let mut job = jobs.with_options(options).run(1000, 50).await.unwrap();
    let mut lines = 0;
    let end = loop {
        match job.next_item().await {
            Ok(Some(_)) => lines += 1,
            other => break other,
        }
    };
    assert!(
        matches!(
            end,
            Err(CallError::Client(ClientError::Call {
                status: CallStatus::DeadlineExceeded,
                ..
            }))
        ),
        "{end:?} after {lines} lines"
    );
    assert!(lines < 1000);
    assert_eq!(
        ended(&mut events).await,
        Event::Ended {
            id: 0,
            how: "cancelled".into()
        }
    );
    let options = CallOptions::new()
        .metadata(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .unwrap();
    let counted = jobs.with_options(options).count().await.unwrap();
    assert_eq!(
        counted.trace.as_deref(),
        Some("0af7651916cd43dd8448eb211c80319c")
    );
    assert_eq!(counted.cancelled, 1);
    // A unary call opened as a stream is refused by name, before any
    // handler runs.
    let wrong = jobs
        .typed()
        .stream(&JobsRequest::Count, CallOptions::new())
        .await
        .unwrap();
    let refused = wrong.finish().await;
    assert!(
        matches!(&refused, Err(CallError::Failed(reason)) if reason.contains("`count` is a unary call")),
        "{refused:?}"
    );
    jobs.close().await.unwrap();
    stop.cancel();
}

#[tokio::test]
async fn a_slow_follower_and_both_streams_at_once() {
    let (addr, stop) = serve().await;
    let jobs = JobsClient::connect(&addr, ClientConfig::default().name("t"))
        .await
        .unwrap();
    // A follower with a window of 2 that reads the whole job: every line,
    // in order, never dropped.
    let job = jobs
        .with_options(CallOptions::new().server_stream(2))
        .run(200, 0)
        .await
        .unwrap();
    use futures::StreamExt;
    let lines: Vec<String> = job.into_stream().map(Result::unwrap).collect().await;
    assert_eq!(lines.len(), 200);
    assert_eq!(lines[199], "job line 199");
    // Both streams: the client's lines come back upper-cased.
    let mut upper = jobs.upper().await.unwrap();
    for word in ["follow", "cancel"] {
        upper.send_item(&word.to_string()).await.unwrap();
        assert_eq!(
            upper.next_item().await.unwrap().unwrap(),
            word.to_uppercase()
        );
    }
    upper.end_items().await.unwrap();
    assert_eq!(upper.next_item().await.unwrap(), None);
    upper.finish().await.unwrap();
    jobs.close().await.unwrap();
    stop.cancel();
}

#[tokio::test]
async fn a_sink_feeds_the_client_stream_while_another_task_reads() {
    use futures::{SinkExt, StreamExt};
    let (addr, stop) = serve().await;
    let jobs = JobsClient::connect(&addr, ClientConfig::default().name("t"))
        .await
        .unwrap();
    // Far more lines than either window: the sink waits for the server's
    // credit, the server's stream for ours, and neither side gets stuck
    // because the two halves run in different tasks.
    const LINES: usize = 2_000;
    let upper = jobs
        .with_options(CallOptions::new().server_stream(4))
        .upper()
        .await
        .unwrap();
    let mut sender = upper.sender();
    let feeding = tokio::spawn(async move {
        let mut lines = futures::stream::iter((0..LINES).map(|i| Ok(format!("line {i}"))));
        // `send_all` then `close`: every line, then the end of our stream.
        sender.send_all(&mut lines).await?;
        sender.close().await
    });
    // Bounded: a sink that never sent the end of our stream would leave
    // the server's stream open, and this test would fail, not hang.
    let read: Vec<String> =
        tokio::time::timeout(PATIENCE, upper.into_stream().map(Result::unwrap).collect())
            .await
            .expect("the server's stream ends once the sink is closed");
    tokio::time::timeout(PATIENCE, feeding)
        .await
        .expect("the sink finishes")
        .unwrap()
        .unwrap();
    assert_eq!(read.len(), LINES);
    assert_eq!(read[0], "LINE 0");
    assert_eq!(read[LINES - 1], format!("LINE {}", LINES - 1));
    jobs.close().await.unwrap();
    stop.cancel();
}
