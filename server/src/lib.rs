//! The query server: one service layer (`service/`) behind two transports, HTTP (`http/`,
//! axum) and gRPC (`grpc/`, tonic), and the command line (`cli/`, in the binary), with one
//! error table (`error.rs`), one auth and rate-limit path, Prometheus metrics and an applier
//! task that tails the store's changelog.

pub mod cache;
pub mod codec;
pub mod config;
pub mod error;
pub mod grpc;
pub mod http;
pub mod mcp;
pub mod metrics;
pub mod models;
pub mod service;
pub mod shopify;
pub mod throttle;
pub mod tls;
pub mod trace;

/// The generated gRPC types (`dartmouth.v1`), clients included for tests and tools.
#[allow(
    clippy::all,
    clippy::pedantic,
    unused_qualifications,
    reason = "generated code"
)]
pub mod proto {
    tonic::include_proto!("dartmouth.v1");

    /// The descriptor set gRPC reflection serves.
    pub const DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/dartmouth_descriptor.bin"));
}

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ServeConfig;
use crate::service::Service;

/// Runs both servers until SIGINT/SIGTERM, then drains in-flight requests. Prints one line,
/// `listening http=ADDR grpc=ADDR`, once both sockets are bound (tests and scripts read it).
pub async fn serve(config: ServeConfig, svc: Arc<Service>) -> Result<()> {
    // A bad certificate or key stops the start, before anything listens.
    let tls = config.tls.clone().map(tls::Tls::new).transpose()?;
    let http_listener = TcpListener::bind(config.http)
        .await
        .with_context(|| format!("http: cannot listen on {}", config.http))?;
    let grpc_listener = TcpListener::bind(config.grpc)
        .await
        .with_context(|| format!("grpc: cannot listen on {}", config.grpc))?;
    let http_addr: SocketAddr = http_listener.local_addr()?;
    let grpc_addr: SocketAddr = grpc_listener.local_addr()?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // Housekeeping: counted authentication failures to the audit log, idle rate budgets
    // forgotten.
    let tidy = every(Duration::from_secs(5), stop_rx.clone(), {
        let svc = Arc::clone(&svc);
        move || {
            let svc = Arc::clone(&svc);
            async move { svc.tidy().await }
        }
    });

    // While the store is unreachable, ask it twice a second: everything resumes by itself.
    let probe = every(Duration::from_millis(500), stop_rx.clone(), {
        let svc = Arc::clone(&svc);
        move || {
            let svc = Arc::clone(&svc);
            async move { svc.probe_store().await }
        }
    });

    // The applier: every domain's new changes become searchable within `apply_interval`; on
    // PostgreSQL a write committed by any node wakes it at once (LISTEN/NOTIFY), the interval
    // being the fallback should a notification be lost with a dropped connection.
    let applier = {
        let svc = Arc::clone(&svc);
        let mut rx = stop_rx.clone();
        let interval = config.apply_interval;
        tokio::spawn(async move {
            let mut lost = None;
            let mut listener = match svc.store().change_listener().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "change listener unavailable: polling only");
                    None
                }
            };
            loop {
                let svc2 = Arc::clone(&svc);
                match tokio::task::spawn_blocking(move || svc2.apply_all()).await {
                    Ok(Ok(_)) => svc.set_ready(),
                    Ok(Err(e)) => tracing::warn!(error = %e, "applier"),
                    Err(e) => tracing::error!(error = %e, "applier task"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = rx.wait_for(|s| *s) => return,
                    woke = next_change(&mut listener) => {
                        if let Err(e) = woke {
                            tracing::warn!(error = %e, "change listener lost: polling until it is back");
                            listener = None;
                            lost = Some(std::time::Instant::now());
                        }
                    }
                }
                // A listener lost with its connection (the store restarted) is made again.
                if lost.is_some_and(|at| at.elapsed() >= Duration::from_secs(1)) {
                    let again =
                        tokio::time::timeout(Duration::from_secs(2), svc.store().change_listener());
                    match again.await {
                        Ok(Ok(l)) => {
                            listener = l;
                            lost = None;
                            // What changed meanwhile went unannounced: kept answers and
                            // shards catch up from the store itself.
                            svc.store().forget_kept();
                        }
                        Ok(Err(_)) | Err(_) => lost = Some(std::time::Instant::now()),
                    }
                }
            }
        })
    };

    if let Some(t) = &tls {
        svc.set_certificates(Arc::clone(&t.http_peers), Arc::clone(&t.grpc_peers));
    }
    let app = http::router(Arc::clone(&svc)).into_make_service_with_connect_info::<SocketAddr>();
    type Serving = std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;
    let http_server: Serving = match &tls {
        None => Box::pin(
            axum::serve(http_listener, app)
                .with_graceful_shutdown(stopped(stop_rx.clone()))
                .into_future(),
        ),
        // `tap_io` makes `ConnectInfo` the client's address, as over plain TCP.
        Some(t) => Box::pin(
            axum::serve(
                axum::serve::ListenerExt::tap_io(t.http_listener(http_listener)?, |_| {}),
                app,
            )
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
        ),
    };

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<proto::retrieval_server::RetrievalServer<grpc::Grpc>>()
        .await;
    health_reporter
        .set_serving::<proto::ingest_server::IngestServer<grpc::Grpc>>()
        .await;
    health_reporter
        .set_serving::<proto::admin_server::AdminServer<grpc::Grpc>>()
        .await;
    health_reporter
        .set_serving::<proto::auth_server::AuthServer<grpc::Grpc>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("grpc reflection")?;
    let retrieval = proto::retrieval_server::RetrievalServer::new(grpc::Grpc {
        svc: Arc::clone(&svc),
    })
    .max_decoding_message_size(config.limits.max_body_bytes);
    let ingest = proto::ingest_server::IngestServer::new(grpc::Grpc {
        svc: Arc::clone(&svc),
    })
    .max_decoding_message_size(config.limits.max_body_bytes);
    let admin = proto::admin_server::AdminServer::new(grpc::Grpc {
        svc: Arc::clone(&svc),
    })
    .max_decoding_message_size(config.limits.max_body_bytes);
    let auth = proto::auth_server::AuthServer::new(grpc::Grpc {
        svc: Arc::clone(&svc),
    })
    .max_decoding_message_size(config.limits.max_body_bytes);
    let grpc_server = tonic::transport::Server::builder()
        .timeout(Duration::from_secs(60))
        .trace_fn(trace::grpc_span)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(retrieval)
        .add_service(ingest)
        .add_service(admin)
        .add_service(auth);
    type GrpcServing =
        std::pin::Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;
    let grpc_server: GrpcServing = match &tls {
        None => Box::pin(grpc_server.serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc_listener),
            stopped(stop_rx.clone()),
        )),
        Some(t) => Box::pin(grpc_server.serve_with_incoming_shutdown(
            t.grpc_incoming(grpc_listener)?,
            stopped(stop_rx.clone()),
        )),
    };
    let tls_watch = tls.as_ref().map(|t| t.watch(stop_rx.clone()));

    tracing::info!(%http_addr, %grpc_addr, "serving");
    #[allow(
        clippy::print_stdout,
        reason = "the one line scripts and tests wait for"
    )]
    {
        let tls = if tls.is_some() { " tls=on" } else { "" };
        println!("listening http={http_addr} grpc={grpc_addr}{tls}");
    }

    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining requests");
        let _ = stop_tx.send(true);
    });
    let (h, g) = tokio::join!(http_server, grpc_server);
    h.context("http server")?;
    g.context("grpc server")?;
    let _ = applier.await;
    let _ = tidy.await;
    let _ = probe.await;
    if let Some(w) = tls_watch {
        let _ = w.await;
    }
    svc.store().close().await;
    Ok(())
}

/// The next change notification, or never without a listener.
async fn next_change(
    listener: &mut Option<dartmouth_domains::ChangeListener>,
) -> dartmouth_domains::Result<()> {
    match listener {
        Some(l) => l.next().await.map(drop),
        None => std::future::pending().await,
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Runs `tick` every `period` until `stop` turns true.
fn every<F, T>(
    period: Duration,
    mut stop: watch::Receiver<bool>,
    mut tick: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> T + Send + 'static,
    T: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            let stopped = tokio::select! {
                _ = tokio::time::sleep(period) => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopped {
                return;
            }
            tick().await;
        }
    })
}
