package control

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"sbc/control/store"
)

// maxPendingCalls bounds the call rows waiting for the store: beyond it
// (the store down for long under load) new rows are dropped and counted.
const maxPendingCalls = 1 << 20

// shrinkAt is the backlog after which the queue's map is made anew once
// it empties.
const shrinkAt = 1 << 14

// batchCalls is the most rows one transaction writes.
const batchCalls = 2000

// batchDelay is how long rows wait for more to join their transaction.
// The states a call passes in its first milliseconds (queued, ringing,
// in-progress) coalesce into one row, and a transaction carries a quarter
// second of calls: at 1,000 calls/s two rows a call instead of four, and
// four transactions a second.
const batchDelay = 250 * time.Millisecond

// callLog writes call rows to the store in the background, many per
// transaction: the calls that put them never wait for the store. Rows of
// one call coalesce while they wait, so only its latest reaches the store.
type callLog struct {
	st        *store.Store
	log       *slog.Logger
	mu        sync.Mutex
	pending   map[string]store.Call
	grown     bool // pending went past shrinkAt: made anew once empty
	wake      chan struct{}
	urgent    chan struct{} // flush: write without waiting for more
	inflight  []store.Call  // rows taken from pending, not yet written
	stop      chan struct{}
	done      chan struct{}
	dropped   atomic.Int64
	written   atomic.Int64
	committed func([]store.Call, []store.Balance) // told of each batch committed
	callbacks map[string][]func()                 // by call SID: once its final row is written
}

// newCallLog starts a writer; written (or nil) is told of each batch of
// rows once its transaction has committed, with the balances its charges
// left.
func newCallLog(st *store.Store, log *slog.Logger, written func([]store.Call, []store.Balance)) *callLog {
	w := &callLog{st: st, log: log, committed: written, callbacks: map[string][]func(){}, pending: map[string]store.Call{}, wake: make(chan struct{}, 1),
		urgent: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// onWritten calls f once a final row of call sid is written.
func (w *callLog) onWritten(sid string, f func()) {
	w.mu.Lock()
	w.callbacks[sid] = append(w.callbacks[sid], f)
	w.mu.Unlock()
}

// put queues a row. A final row is never replaced by an earlier state.
func (w *callLog) put(c store.Call) {
	w.mu.Lock()
	old, ok := w.pending[c.SID]
	switch {
	case ok && old.Final() && !c.Final():
	case !ok && len(w.pending) >= maxPendingCalls:
		delete(w.callbacks, c.SID) // never written: its record stays for the next run
		w.mu.Unlock()
		if w.dropped.Add(1) == 1 {
			w.log.Error("call log rows dropped: the store is not keeping up or is down", "pending", maxPendingCalls)
		}
		return
	default:
		w.pending[c.SID] = c
		w.grown = w.grown || len(w.pending) > shrinkAt
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *callLog) run() {
	defer close(w.done)
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-w.wake:
		case <-w.urgent:
		case <-w.stop:
			w.writeAll()
			return
		}
		delay := time.NewTimer(batchDelay)
		select {
		case <-delay.C:
		case <-w.urgent:
		case <-w.stop:
		}
		delay.Stop()
		for {
			n, err := w.writeBatch()
			if err != nil {
				w.log.Warn("write call logs", "error", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
				case <-w.stop:
					w.writeAll()
					return
				}
				backoff = min(2*backoff, 10*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			if n == 0 {
				break
			}
		}
	}
}

// writeBatch writes up to batchCalls pending rows; rows that fail go back
// unless a newer row of the call came meanwhile.
func (w *callLog) writeBatch() (int, error) {
	w.mu.Lock()
	batch := make([]store.Call, 0, min(len(w.pending), batchCalls))
	for sid, c := range w.pending {
		if len(batch) == batchCalls {
			break
		}
		batch = append(batch, c)
		delete(w.pending, sid)
	}
	w.inflight = batch
	if len(w.pending) == 0 && w.grown {
		// A Go map keeps its buckets when emptied: after a backlog
		// (the store down for a while) give the memory back.
		w.pending, w.grown = map[string]store.Call{}, false
	}
	w.mu.Unlock()
	if len(batch) == 0 {
		return 0, nil
	}
	bals, err := w.st.WriteCalls(context.Background(), batch)
	if err != nil {
		w.mu.Lock()
		for _, c := range batch {
			// Back in line, unless a newer row came meanwhile, which a
			// final row still beats.
			if newer, ok := w.pending[c.SID]; !ok || c.Final() && !newer.Final() {
				w.pending[c.SID] = c
			}
		}
		w.inflight = nil
		w.mu.Unlock()
		return 0, err
	}
	w.written.Add(int64(len(batch)))
	if w.committed != nil {
		w.committed(batch, bals)
	}
	var due []func()
	w.mu.Lock()
	w.inflight = nil
	for i := range batch {
		if f, ok := w.callbacks[batch[i].SID]; ok && batch[i].Final() {
			due = append(due, f...)
			delete(w.callbacks, batch[i].SID)
		}
	}
	w.mu.Unlock()
	for _, f := range due {
		f()
	}
	return len(batch), nil
}

// writeAll is the last flush at close; it tries each batch once.
func (w *callLog) writeAll() {
	for {
		n, err := w.writeBatch()
		if err != nil {
			w.mu.Lock()
			lost := len(w.pending)
			w.mu.Unlock()
			w.log.Error("call log rows not written at stop", "error", err, "rows", lost)
			return
		}
		if n == 0 {
			return
		}
	}
}

// flush waits until the rows queued so far are in the store (or ctx
// ends). It waits for the queue to empty: for the end of a run, when no
// new calls come.
func (w *callLog) flush(ctx context.Context) error {
	return w.await(ctx, func() bool { return len(w.pending) == 0 && len(w.inflight) == 0 })
}

// flushCall waits until the row of call sid queued so far is in the
// store (or ctx ends), however busy the queue is with other calls.
func (w *callLog) flushCall(ctx context.Context, sid string) error {
	return w.await(ctx, func() bool {
		if _, ok := w.pending[sid]; ok {
			return false
		}
		for i := range w.inflight {
			if w.inflight[i].SID == sid {
				return false
			}
		}
		return true
	})
}

// await hurries the writer until done, checked under w.mu, holds.
func (w *callLog) await(ctx context.Context, done func() bool) error {
	for {
		w.mu.Lock()
		ok := done()
		w.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case w.urgent <- struct{}{}:
		default:
		}
		select {
		case <-time.After(2 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (w *callLog) close() {
	close(w.stop)
	<-w.done
}

// EndedByLost is the ended_by of a call whose node stopped without
// ending it and did not take it over at its next start.
const EndedByLost = "lost"

// CloseLost ends, in the log, this node's calls a previous run left
// unended that the SBC did not take over (live: the SIDs it carries):
// answered ones as completed, the others as failed, ended_by "lost", their
// end the last time the log heard of them. It returns how many.
func (p *Plane) CloseLost(ctx context.Context, live []string) (int, error) {
	rows, err := p.st.LiveCalls(ctx, p.cfg.Node)
	if err != nil {
		return 0, err
	}
	keep := map[string]bool{}
	for _, sid := range live {
		keep[sid] = true
	}
	var lost []store.Call
	for _, c := range rows {
		if keep[c.SID] {
			continue
		}
		c.Status, c.EndedBy, c.Ended = store.CallFailed, EndedByLost, c.Created
		if !c.Answered.IsZero() {
			c.Status, c.Ended = store.CallCompleted, c.Answered
		}
		lost = append(lost, c)
	}
	if len(lost) == 0 {
		return 0, nil
	}
	// Only rows still live: a call ending now writes its own end.
	return p.st.EndLive(ctx, lost)
}
