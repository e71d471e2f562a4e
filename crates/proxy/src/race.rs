//! Running a session's two directions in one task, each polled only when it was woken.
//!
//! `tokio::select!` polls every branch at every wake-up of the task. A session's directions
//! (client to server, server to client) take turns: a message from the client wakes the task,
//! and the other direction, waiting on its own socket, is polled for nothing. That poll goes
//! through tokio's read path down to the socket's readiness (about 200 instructions), at
//! every message of every session. [`first_to_finish`] gives each direction a waker of its
//! own, which marks it and wakes the task, and polls only the marked ones.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// The output of whichever of `first` and `second` finishes first; the other is dropped.
///
/// Polls `first` before `second` when both were woken. Each is polled once at the start, and
/// then again only after a waker it handed out was woken.
pub(crate) async fn first_to_finish<T>(
    first: impl Future<Output = T>,
    second: impl Future<Output = T>,
) -> T {
    let mut first = pin!(first);
    let mut second = pin!(second);
    let task = Arc::new(TaskWaker::default());
    let first_flag = Arc::new(Branch::new(&task));
    let second_flag = Arc::new(Branch::new(&task));
    let first_waker = Waker::from(Arc::clone(&first_flag));
    let second_waker = Waker::from(Arc::clone(&second_flag));
    poll_fn(|cx| {
        // Stored before either branch runs: a wake-up during the poll must reach this task.
        task.follow(cx.waker());
        if first_flag.take() {
            if let Poll::Ready(out) = first.as_mut().poll(&mut Context::from_waker(&first_waker)) {
                return Poll::Ready(out);
            }
        }
        if second_flag.take() {
            if let Poll::Ready(out) = second
                .as_mut()
                .poll(&mut Context::from_waker(&second_waker))
            {
                return Poll::Ready(out);
            }
        }
        Poll::Pending
    })
    .await
}

/// The waker of the task running both branches, as of its latest poll.
#[derive(Default)]
struct TaskWaker(Mutex<Option<Waker>>);

impl TaskWaker {
    fn follow(&self, waker: &Waker) {
        let mut current = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !current.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *current = Some(waker.clone());
        }
    }

    fn wake(&self) {
        let current = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waker) = current.as_ref() {
            waker.wake_by_ref();
        }
    }
}

/// One branch's waker: marks the branch as due for a poll, then wakes the task.
struct Branch {
    woken: AtomicBool,
    task: Arc<TaskWaker>,
}

impl Branch {
    fn new(task: &Arc<TaskWaker>) -> Self {
        Self {
            // Every branch is polled once at the start.
            woken: AtomicBool::new(true),
            task: Arc::clone(task),
        }
    }

    /// Whether the branch was woken since it was last polled (and clears the mark).
    fn take(&self) -> bool {
        // Cleared before the poll: a wake-up during the poll marks it again.
        self.woken.swap(false, Ordering::AcqRel)
    }
}

impl Wake for Branch {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;

    /// A future that counts its polls and finishes when its channel delivers.
    async fn counted(polls: &AtomicUsize, mut rx: mpsc::Receiver<u32>) -> u32 {
        poll_fn(|cx| {
            polls.fetch_add(1, Ordering::SeqCst);
            match rx.poll_recv(cx) {
                Poll::Ready(value) => Poll::Ready(value.unwrap_or(0)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    #[tokio::test]
    async fn only_the_woken_branch_is_polled_again() {
        let (first_polls, second_polls) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let (first_tx, first_rx) = mpsc::channel(1);
        let (second_tx, second_rx) = mpsc::channel(1);
        let first = async {
            // Wakes itself ten times before it finishes; the other branch sleeps throughout.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            counted(&first_polls, first_rx).await
        };
        let sender = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            first_tx.send(7).await.expect("receiver alive");
            std::future::pending::<()>().await;
        };
        let both = async {
            tokio::select! {
                out = first_to_finish(first, counted(&second_polls, second_rx)) => out,
                () = sender => unreachable!("pending forever"),
            }
        };
        let out = tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .expect("every wake-up reached the task");
        assert_eq!(out, 7);
        assert_eq!(
            second_polls.load(Ordering::SeqCst),
            1,
            "polled once, at the start"
        );
        assert!(first_polls.load(Ordering::SeqCst) >= 2);
        drop(second_tx);
    }

    #[tokio::test]
    async fn either_branch_can_finish_and_none_is_lost() {
        for finisher in [0u32, 1] {
            let (first_polls, second_polls) = (AtomicUsize::new(0), AtomicUsize::new(0));
            let (first_tx, first_rx) = mpsc::channel(1);
            let (second_tx, second_rx) = mpsc::channel(1);
            let tx = if finisher == 0 {
                first_tx.clone()
            } else {
                second_tx.clone()
            };
            // Sent from another thread while the task sleeps: the wake-up must reach it.
            let sender = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                tx.blocking_send(finisher + 10).expect("receiver alive");
            });
            // The deadline is polled first: had the send not woken the task, the deadline
            // would, and would win.
            let out = tokio::select! {
                biased;
                () = tokio::time::sleep(Duration::from_secs(5)) => panic!("the wake-up was lost"),
                out = first_to_finish(
                    counted(&first_polls, first_rx),
                    counted(&second_polls, second_rx),
                ) => out,
            };
            assert_eq!(out, finisher + 10);
            sender.join().expect("sender thread");
            drop((first_tx, second_tx));
        }
    }
}
