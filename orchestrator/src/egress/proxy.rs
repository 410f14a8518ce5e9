//! The proxy itself: HTTP CONNECT and absolute-form `http://` requests on
//! connections accepted from one child's namespace, decided by its
//! [`Policy`](super::policy::Policy), resolved here, connected to the address that was checked.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::policy::normalize_host;
use super::{Child, resolve};

/// How long a connection to an allowed address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request head may take to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest host name kept in an audit record.
const MAX_HOST: usize = 255;

type Body = BoxBody<Bytes, hyper::Error>;

/// Serves one connection the child made to its proxy.
pub(super) async fn serve(child: Arc<Child>, stream: TcpStream) {
    let service = hyper::service::service_fn(move |req| handle(child.clone(), req));
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!("egress proxy connection: {e}");
    }
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp
}

async fn handle(child: Arc<Child>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if req.method() == Method::CONNECT {
        return Ok(connect(child, req).await);
    }
    Ok(forward(child, req).await)
}

/// Why an allowed request could not be served (502).
struct Failure(&'static str, String);

/// Checks `host:port` against the child's policy, resolves it, refuses
/// blocked addresses, and connects to one that passed.
async fn open(child: &Child, host: &str, port: u16) -> Result<TcpStream, Response<Body>> {
    if let Err(refusal) = child.policy.check(host, port) {
        return Err(child.refuse(host, port, refusal.reason(), &[]));
    }
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => match resolve(host, port).await {
            Ok(a) if !a.is_empty() => a,
            Ok(_) => {
                return Err(child.fail(host, port, Failure("resolve_failed", "no address".into())));
            }
            Err(e) => return Err(child.fail(host, port, Failure("resolve_failed", e.to_string()))),
        },
    };
    let mut passed = Vec::new();
    let mut first_refusal = None;
    for ip in &addrs {
        match child.policy.address_refused(*ip) {
            None => passed.push(*ip),
            Some(class) => {
                first_refusal.get_or_insert(class);
            }
        }
    }
    if passed.is_empty() {
        let reason = first_refusal.unwrap_or("resolve_failed");
        return Err(child.refuse(host, port, reason, &addrs));
    }
    let mut last = String::new();
    for ip in passed {
        let addr = SocketAddr::new(ip, port);
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                child.counters.allowed();
                return Ok(stream);
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: timed out after {CONNECT_TIMEOUT:?}"),
        }
    }
    Err(child.fail(host, port, Failure("connect_failed", last)))
}

impl Child {
    fn refuse(
        &self,
        host: &str,
        port: u16,
        reason: &'static str,
        addrs: &[IpAddr],
    ) -> Response<Body> {
        self.counters.refused(reason);
        let host: String = host.chars().take(MAX_HOST).collect();
        let mut record = serde_json::json!({
            "kind": "egress_refused",
            "process": self.target,
            "connection": self.connection,
            "agent": self.agent,
            "instanceKey": self.instance_key,
            "outcome": "refused",
            "host": host,
            "port": port,
            "reason": reason,
        });
        if !addrs.is_empty() {
            let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            record["addresses"] = addrs.into();
        }
        super::audit(record);
        let mut resp = text(
            StatusCode::FORBIDDEN,
            format!("egress refused: {reason} ({host}:{port})\n"),
        );
        resp.headers_mut()
            .insert("x-egress-refused", HeaderValue::from_static(reason));
        resp
    }

    fn fail(&self, host: &str, port: u16, failure: Failure) -> Response<Body> {
        let Failure(reason, detail) = failure;
        self.counters.failed(reason);
        let host: String = host.chars().take(MAX_HOST).collect();
        text(
            StatusCode::BAD_GATEWAY,
            format!("egress failed: {reason} ({host}:{port}): {detail}\n"),
        )
    }
}

/// `CONNECT host:port`: a tunnel to the checked address.
async fn connect(child: Arc<Child>, req: Request<Incoming>) -> Response<Body> {
    let Some(authority) = req.uri().authority().cloned() else {
        return text(StatusCode::BAD_REQUEST, "CONNECT needs host:port\n".into());
    };
    let Some(port) = authority.port_u16() else {
        return text(StatusCode::BAD_REQUEST, "CONNECT needs host:port\n".into());
    };
    let host = normalize_host(authority.host());
    let upstream = match open(&child, &host, port).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let counters = child.counters.clone();
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let mut client = TokioIo::new(upgraded);
                let mut upstream = Counting {
                    inner: upstream,
                    counters,
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Err(e) => tracing::debug!("egress proxy: CONNECT upgrade: {e}"),
        }
    });
    Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed())
}

/// An absolute-form `http://` request: forwarded in origin form.
async fn forward(child: Arc<Child>, req: Request<Incoming>) -> Response<Body> {
    let uri = req.uri().clone();
    let (Some("http"), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "this proxy takes CONNECT host:port, or absolute-form http:// requests\n".into(),
        );
    };
    let host = normalize_host(authority.host());
    let port = authority.port_u16().unwrap_or(80);
    let upstream = match open(&child, &host, port).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let io = TokioIo::new(Counting {
        inner: upstream,
        counters: child.counters.clone(),
    });
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(io).await {
        Ok(pair) => pair,
        Err(e) => return child.fail(&host, port, Failure("connect_failed", e.to_string())),
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let (mut parts, body) = req.into_parts();
    let origin = uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match origin.parse() {
        Ok(u) => u,
        Err(_) => return text(StatusCode::BAD_REQUEST, "bad request target\n".into()),
    };
    parts.headers.remove("proxy-authorization");
    parts.headers.remove("proxy-connection");
    // The authority without any userinfo: `host` or `host:port`, as asked.
    let host_header = match authority.port() {
        Some(p) => format!("{}:{p}", authority.host()),
        None => authority.host().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&host_header) {
        parts.headers.insert(HOST, value);
    }
    match sender.send_request(Request::from_parts(parts, body)).await {
        Ok(resp) => resp.map(BodyExt::boxed),
        Err(e) => child.fail(&host, port, Failure("connect_failed", e.to_string())),
    }
}

/// The upstream side of a proxied connection, counting bytes each way.
struct Counting {
    inner: TcpStream,
    counters: Arc<super::Counters>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.counters.received(n);
        }
        polled
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.counters.sent(*n);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
