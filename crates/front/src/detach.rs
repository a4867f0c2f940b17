//! Work that must finish even if the request that started it is dropped, without a task of
//! its own in the common case.
//!
//! A PHP request that reached the queue or a worker runs to its end whoever still waits
//! for it (a request is never half-run because its client hung up). Spawning a task per
//! request gives that, at the price of a spawn, a channel and often a wake-up on another
//! runtime thread for every request. [`Detach`] runs the work inline on the caller's task
//! and, only if the caller is dropped before the work is done, hands what is left to a
//! task of its own.
//!
//! Never: drops unfinished work while a runtime is there to finish it, or runs the work
//! twice.
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// `fut`, polled by whoever awaits this, finished on its own task if dropped unfinished.
pub(crate) struct Detach<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fut: Option<Pin<Box<F>>>,
}

impl<F> Detach<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    pub(crate) fn new(fut: F) -> Self {
        Self {
            fut: Some(Box::pin(fut)),
        }
    }
}

impl<F> Future for Detach<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(fut) = self.fut.as_mut() else {
            // Polled after completion: a caller bug, never a second run.
            return Poll::Pending;
        };
        let out = std::task::ready!(fut.as_mut().poll(cx));
        self.fut = None;
        Poll::Ready(out)
    }
}

impl<F> Drop for Detach<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let Some(fut) = self.fut.take() {
            // Outside a runtime (it is shutting down) there is nobody left to finish it.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(fut);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Detach;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn finished_inline_it_runs_once() {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let out = Detach::new(async move {
            r.fetch_add(1, Ordering::SeqCst);
            7
        })
        .await;
        assert_eq!(out, 7);
        tokio::task::yield_now().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn dropped_unfinished_it_finishes_on_its_own() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let work = Detach::new(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send("done");
        });
        // The caller gives up before the work is done.
        let _ = tokio::time::timeout(Duration::from_millis(5), work).await;
        let got = tokio::time::timeout(Duration::from_secs(5), rx).await;
        assert_eq!(got.ok().and_then(Result::ok), Some("done"));
    }
}
