//! A fault-injecting TCP proxy for tests, put between a service and what it talks to (PostgreSQL, Auth)
//! on loopback: it forwards bytes until told to **cut** (open connections closed, new ones closed as
//! soon as accepted), **stall** (connections stay open, nothing is forwarded), **reset** (every open
//! connection ends with a TCP reset, new ones pass) or **heal** (forward again). A real network fault,
//! not a mock of the other side: the service's own driver meets it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Stall,
    Cut,
}

/// The proxy's state: its mode, and a generation that a reset bumps (connections of an older one end).
type State = (Mode, u64);

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free loopback port forwarding to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (state, _) = watch::channel((Mode::Pass, 0));
        let watch = state.subscribe();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let current = *watch.borrow();
                if current.0 == Mode::Cut {
                    drop(client);
                    continue;
                }
                tokio::spawn(connection(client, target, watch.clone(), current.1));
            }
        });
        Ok(Proxy { addr, state, task })
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every open connection closed, new ones closed as soon as accepted (the target is "gone").
    pub fn cut(&self) {
        self.state.send_modify(|s| s.0 = Mode::Cut);
    }

    /// Connections stay open but nothing is forwarded either way (a hung network).
    pub fn stall(&self) {
        self.state.send_modify(|s| s.0 = Mode::Stall);
    }

    /// Every open connection ends with a TCP reset; new ones pass.
    pub fn reset(&self) {
        self.state.send_modify(|s| *s = (Mode::Pass, s.1 + 1));
    }

    /// Forward again.
    pub fn heal(&self) {
        self.state.send_modify(|s| s.0 = Mode::Pass);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

async fn connection(client: TcpStream, target: SocketAddr, state: watch::Receiver<State>, generation: u64) {
    let Ok(server) = TcpStream::connect(target).await else { return };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pipe(cr, sw, state.clone(), generation);
    let down = pipe(sr, cw, state, generation);
    // A reset ends both connections with RST rather than FIN: linger 0 as they are dropped.
    if let (Some((cr, sw)), Some((sr, cw))) = tokio::join!(up, down) {
        for stream in [cr.reunite(cw), sr.reunite(sw)].into_iter().flatten() {
            // Deprecated because a non-zero linger blocks the thread on drop; a zero one does not: the
            // kernel sends the reset at once, which is the point.
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
        }
    }
}

type Halves = (tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf);

/// What a connection of `generation` does next.
enum Flow {
    Pass,
    End,
    Reset,
}

/// Waits while the proxy is stalled; then whether the connection passes, ends (a cut, or the proxy is
/// gone) or is reset.
async fn passing(state: &mut watch::Receiver<State>, generation: u64) -> Flow {
    match state.wait_for(|s| s.0 != Mode::Stall || s.1 != generation).await.map(|s| *s) {
        Err(_) | Ok((Mode::Cut, _)) => Flow::End,
        Ok((_, g)) if g != generation => Flow::Reset,
        Ok(_) => Flow::Pass,
    }
}

/// Copies `from` to `to` while the proxy passes; returns the halves when a reset ends the connection (so
/// that it can be closed with RST), nothing when it ends otherwise.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: watch::Receiver<State>,
    generation: u64,
) -> Option<Halves> {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        // Wait while stalled; end on a cut or a reset.
        match passing(&mut state, generation).await {
            Flow::Pass => {}
            Flow::End => return None,
            Flow::Reset => return Some((from, to)),
        }
        let n = tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            },
            changed = state.changed() => {
                if changed.is_err() {
                    return None;
                }
                continue;
            }
        };
        // Bytes read just before a stall are held until it ends (or the connection is cut).
        match passing(&mut state, generation).await {
            Flow::Pass => {}
            Flow::End => return None,
            Flow::Reset => return Some((from, to)),
        }
        if to.write_all(buffer.get(..n).unwrap_or_default()).await.is_err() {
            return None;
        }
    }
}
