//! A TCP proxy on a free local port in front of a server, to cut a process
//! off from it and heal the cut: cut, every connection through it is
//! dropped and new ones are closed as soon as they are accepted (the
//! server looks down to the client, though it runs on).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    cut: AtomicBool,
    closed: AtomicBool,
    /// Both ends of every connection passed on, to drop them at a cut.
    open: Mutex<Vec<TcpStream>>,
}

impl Proxy {
    /// Forwards `127.0.0.1:port` (free, chosen here) to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.closed.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if accepting.cut.load(Ordering::SeqCst) {
                    continue;
                }
                pass_on(&accepting, client, target);
            }
        });
        Proxy { port, shared }
    }

    /// `postgres://…` or `nats://…` through the proxy: `url` with its
    /// `127.0.0.1:PORT` replaced by the proxy's.
    pub fn url(&self, url: &str, server_port: u16) -> String {
        url.replace(
            &format!("127.0.0.1:{server_port}"),
            &format!("127.0.0.1:{}", self.port),
        )
    }

    /// Drops every connection, and closes new ones at once, until healed.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        for stream in self.shared.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Passes connections on again.
    pub fn heal(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.cut();
        // Wakes the accepting thread up, so that it sees it is closed.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Connects `client` to `target` and copies both ways on two threads.
fn pass_on(shared: &Arc<Shared>, client: TcpStream, target: SocketAddr) {
    let Ok(server) = TcpStream::connect(target) else {
        return;
    };
    let ends = [client.try_clone(), server.try_clone()];
    let [Ok(c), Ok(s)] = ends else { return };
    {
        let mut open = shared.open.lock().unwrap();
        // Cut meanwhile: refused like the others.
        if shared.cut.load(Ordering::SeqCst) {
            return;
        }
        open.extend([c, s]);
    }
    for (from, to) in [
        (client.try_clone(), server.try_clone()),
        (Ok(server), Ok(client)),
    ] {
        let (Ok(mut from), Ok(mut to)) = (from, to) else {
            continue;
        };
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            loop {
                match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    }
}
