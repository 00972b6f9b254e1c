//! Writes to a peer socket that are ready together leave in one system call.
//!
//! Under load, many exchanges share one HTTP/2 connection between two gateways, yet each request
//! and each response went out in a `writev` of its own (docs/performance-history.md, "Sixth pass").
//! [`Coalesce`] sits under TLS and keeps what TLS writes. Asked to flush, it first yields to the
//! runtime once, so that the exchanges that are ready at that moment can add their frames, and
//! then writes everything it holds in one call. With nothing else to run, the yield returns at
//! once; nothing waits for more data to arrive.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes held back; a write that would go past it first sends what is held.
const MAX_HELD: usize = 64 * 1024;

/// A socket whose writes are held until a flush, and sent together.
#[derive(Debug)]
pub struct Coalesce<T> {
    io: T,
    held: Vec<u8>,
    /// How much of `held` is already sent (a socket may take part of it).
    sent: usize,
    /// This flush already yielded once.
    yielded: bool,
}

impl<T> Coalesce<T> {
    /// Wrap `io`.
    pub fn new(io: T) -> Self {
        Coalesce {
            io,
            held: Vec::new(),
            sent: 0,
            yielded: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> Coalesce<T> {
    /// Send everything held.
    fn poll_send_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum::<usize>();
        if self.held.len() + len > MAX_HELD {
            ready!(self.poll_send_held(cx))?;
            if len >= MAX_HELD {
                return Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
            }
        }
        for buf in bufs {
            self.held.extend_from_slice(buf);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.held.is_empty() {
            if !self.yielded {
                // Back of the run queue: the task is polled again after the others that are ready.
                self.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(self.poll_send_held(cx))?;
        }
        self.yielded = false;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_send_held(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Records each write call it gets; takes at most `limit` bytes per call.
    #[derive(Default)]
    struct Socket {
        writes: Vec<Vec<u8>>,
        limit: Option<usize>,
        shut: bool,
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = self.limit.unwrap_or(usize::MAX).min(buf.len());
            self.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shut = true;
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Default)]
    struct CountWakes(AtomicUsize);
    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn writes_are_held_until_a_flush_that_yields_once_then_sends_them_in_one_call() {
        let wakes = Arc::new(CountWakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut io = Coalesce::new(Socket::default());
        let mut io = Pin::new(&mut io);
        for record in [&b"one"[..], b"two", b"three"] {
            assert!(
                matches!(io.as_mut().poll_write(&mut cx, record), Poll::Ready(Ok(n)) if n == record.len())
            );
        }
        let slices = [io::IoSlice::new(b"-4"), io::IoSlice::new(b"-5")];
        assert!(matches!(
            io.as_mut().poll_write_vectored(&mut cx, &slices),
            Poll::Ready(Ok(4))
        ));
        assert!(io.io.writes.is_empty(), "nothing sent before a flush");
        // The first flush yields (and asks to be polled again); the next one sends.
        assert!(io.as_mut().poll_flush(&mut cx).is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(io.io.writes.is_empty());
        assert!(io.as_mut().poll_write(&mut cx, b"six").is_ready());
        assert!(matches!(
            io.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(io.io.writes, vec![b"onetwothree-4-5six".to_vec()]);
        // Nothing held: a flush neither yields nor writes.
        assert!(matches!(
            io.as_mut().poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(io.io.writes.len(), 1);
    }

    #[test]
    fn a_socket_that_takes_part_gets_the_rest_and_big_writes_are_not_held() {
        let waker = Waker::from(Arc::new(CountWakes::default()));
        let mut cx = Context::from_waker(&waker);
        let mut io = Coalesce::new(Socket {
            limit: Some(4),
            ..Socket::default()
        });
        let mut io = Pin::new(&mut io);
        assert!(io.as_mut().poll_write(&mut cx, b"0123456789").is_ready());
        assert!(io.as_mut().poll_flush(&mut cx).is_pending());
        assert!(io.as_mut().poll_flush(&mut cx).is_ready());
        assert_eq!(io.io.writes.concat(), b"0123456789");
        assert_eq!(io.io.writes.len(), 3);

        let mut io = Coalesce::new(Socket::default());
        let mut io = Pin::new(&mut io);
        assert!(io.as_mut().poll_write(&mut cx, b"held").is_ready());
        let big = vec![7u8; MAX_HELD];
        // What is held goes first, then the big write goes straight through.
        assert!(
            matches!(io.as_mut().poll_write(&mut cx, &big), Poll::Ready(Ok(n)) if n == MAX_HELD)
        );
        assert_eq!(io.io.writes, vec![b"held".to_vec(), big]);
        assert!(io.held.is_empty());
    }

    #[test]
    fn shutdown_sends_what_is_held_first() {
        let waker = Waker::from(Arc::new(CountWakes::default()));
        let mut cx = Context::from_waker(&waker);
        let mut io = Coalesce::new(Socket::default());
        let mut io = Pin::new(&mut io);
        assert!(io.as_mut().poll_write(&mut cx, b"close_notify").is_ready());
        assert!(io.as_mut().poll_shutdown(&mut cx).is_ready());
        assert_eq!(io.io.writes, vec![b"close_notify".to_vec()]);
        assert!(io.io.shut);
    }

    #[tokio::test]
    async fn over_a_real_socket_everything_arrives_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut all = Vec::new();
            socket.read_to_end(&mut all).await.unwrap();
            all
        });
        let mut io = Coalesce::new(tokio::net::TcpStream::connect(addr).await.unwrap());
        let mut expected = Vec::new();
        for i in 0..200u32 {
            let chunk = vec![(i % 251) as u8; 1 + (i as usize * 97) % 3000];
            io.write_all(&chunk).await.unwrap();
            expected.extend_from_slice(&chunk);
            if i % 7 == 0 {
                io.flush().await.unwrap();
            }
        }
        io.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), expected);
    }
}
