//! Controllable TCP proxies between nodes: one per ordered pair of nodes
//! and kind, so a partition can cut `a -> b` and leave `b -> a` (or every
//! other pair) alone. A proxy passes bytes both ways, or, while cut,
//! refuses new connections and breaks the open ones (a network split), or
//! holds them without forwarding (a black hole: the sender's timeouts run).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// What a proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass = 0,
    /// New connections are closed at once; open ones are broken.
    Refuse = 1,
    /// Connections are accepted and held; nothing is forwarded.
    BlackHole = 2,
}

impl Mode {
    fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::Refuse,
            2 => Mode::BlackHole,
            _ => Mode::Pass,
        }
    }
}

/// A running proxy's controls.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub port: u16,
    mode: Arc<AtomicU8>,
    /// Bumped on every mode change: connections opened under an older
    /// generation close when the mode is not `Pass`.
    generation: Arc<AtomicU64>,
    /// The accept loop (and so the listening socket), stopped by
    /// [`Proxy::stop`].
    accept: Arc<std::sync::Mutex<Option<tokio::task::AbortHandle>>>,
}

impl Proxy {
    /// Binds 127.0.0.1:0 and forwards to `127.0.0.1:target` until
    /// [`Proxy::stop`].
    pub async fn start(target: u16) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let proxy = Proxy {
            port,
            mode: Arc::new(AtomicU8::new(Mode::Pass as u8)),
            generation: Arc::new(AtomicU64::new(0)),
            accept: Arc::new(std::sync::Mutex::new(None)),
        };
        let p = proxy.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let p = p.clone();
                tokio::spawn(async move { p.serve(client, target).await });
            }
        });
        if let Ok(mut g) = proxy.accept.lock() {
            *g = Some(task.abort_handle());
        }
        Ok(proxy)
    }

    /// Stops accepting (closing the listening socket) and breaks the open
    /// connections.
    pub fn stop(&self) {
        self.set(Mode::Refuse);
        if let Ok(mut g) = self.accept.lock() {
            if let Some(h) = g.take() {
                h.abort();
            }
        }
    }

    pub fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    async fn serve(&self, mut client: TcpStream, target: u16) {
        match self.mode() {
            Mode::Refuse => {
                let _ = client.shutdown().await;
                return;
            }
            Mode::BlackHole => {
                // Hold the connection (bounded) while the hole lasts.
                for _ in 0..600 {
                    if self.mode() != Mode::BlackHole {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                return;
            }
            Mode::Pass => {}
        }
        let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", target)).await else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let gen = self.generation.load(Ordering::SeqCst);
        let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
        tokio::pin!(copy);
        loop {
            tokio::select! {
                _ = &mut copy => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if self.generation.load(Ordering::SeqCst) != gen && self.mode() != Mode::Pass {
                        // Cut while open: break the connection.
                        return;
                    }
                }
            }
        }
    }
}
