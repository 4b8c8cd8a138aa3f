package control

import (
	"context"
	"errors"
	"sync"
	"time"

	"sbc/control/store"
)

// maxMessageBatch bounds the writes one commit carries.
const maxMessageBatch = 512

// errWriterClosed: the plane is closing.
var errWriterClosed = errors.New("control: message writer closed")

// msgWriter writes message rows for many callers at once (group commit):
// each caller waits for the commit that carries its write, and one
// commit, one sync to disk, serves every write that came while the
// previous one was made. A message's rows (queued, sending, sent) are as
// durable as with a commit each; a thousand messages a second need tens
// of commits, not thousands.
type msgWriter struct {
	st   *store.Store
	reqs chan *msgReq
	stop chan struct{}
	done chan struct{}

	mu     sync.RWMutex // held to enqueue; closed under it
	closed bool
}

type msgReq struct {
	w    store.MessageWrite
	res  store.MessageWritten
	err  error
	done chan struct{}
}

func newMsgWriter(st *store.Store) *msgWriter {
	w := &msgWriter{st: st, reqs: make(chan *msgReq, maxMessageBatch), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

// write makes one write and returns once it is committed (or failed).
func (w *msgWriter) write(ctx context.Context, mw store.MessageWrite) (store.MessageWritten, error) {
	r := &msgReq{w: mw, done: make(chan struct{})}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return store.MessageWritten{}, errWriterClosed
	}
	select {
	case w.reqs <- r: // the writer runs until closed: the queue drains
	case <-ctx.Done():
		w.mu.RUnlock()
		return store.MessageWritten{}, ctx.Err()
	}
	w.mu.RUnlock()
	// Once queued it is written (in 10 s at most): its caller learns
	// what became of it, whatever became of its own context.
	<-r.done
	return r.res, r.err
}

func (w *msgWriter) run() {
	defer close(w.done)
	batch := make([]*msgReq, 0, maxMessageBatch)
	for {
		select {
		case r := <-w.reqs:
			batch = append(batch[:0], r)
		case <-w.stop:
			return
		}
	more:
		for len(batch) < maxMessageBatch {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		ws := make([]store.MessageWrite, len(batch))
		for i, r := range batch {
			ws[i] = r.w
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := w.st.WriteMessages(ctx, ws)
		cancel()
		// One bad write fails its batch: each again alone, so only it
		// fails; not when the store did not answer in time (each alone
		// would wait as long).
		alone := err != nil && !errors.Is(err, context.DeadlineExceeded)
		for i, r := range batch {
			switch {
			case err == nil:
				r.res = res[i]
			case alone:
				r.res, r.err = w.one(r.w)
			default:
				r.err = err
			}
			close(r.done)
		}
	}
}

// close ends the writer once the writes in hand are made; later ones
// fail.
func (w *msgWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	for {
		select {
		case r := <-w.reqs: // came with the stop: written alone
			r.res, r.err = w.one(r.w)
			close(r.done)
		default:
			return
		}
	}
}

func (w *msgWriter) one(mw store.MessageWrite) (store.MessageWritten, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := w.st.WriteMessages(ctx, []store.MessageWrite{mw})
	if err != nil {
		return store.MessageWritten{}, err
	}
	return res[0], nil
}

// writeMessage makes one message write: through the group-commit writer
// when the plane runs one, else in a transaction of its own.
func (p *Plane) writeMessage(ctx context.Context, mw store.MessageWrite) (store.MessageWritten, error) {
	if p.msgw != nil {
		return p.msgw.write(ctx, mw)
	}
	res, err := p.st.WriteMessages(ctx, []store.MessageWrite{mw})
	if err != nil {
		return store.MessageWritten{}, err
	}
	return res[0], nil
}
