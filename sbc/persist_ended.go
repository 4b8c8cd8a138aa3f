package sbc

import (
	"encoding/json"
	"os"

	"sbc/control/store"
)

// An answered call's record outlives the call until its final log row
// (and with it the call's charge) is in the store: at the end the record
// is replaced by that row, and removed once the control plane has
// written it. A daemon killed in between finds the row at its next start
// and writes it then; the charge is keyed by the call's SID, so it is
// made once.

// persistEnded replaces the record of an ended call by its final row r;
// false when there was no record (calls not kept, never answered) or it
// could not be written (then it is gone: a live record would bring the
// call back).
func (c *call) persistEnded(r store.Call) bool {
	path := c.s.statePath(c.id)
	if path == "" {
		return false
	}
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	if _, err := os.Lstat(path); err != nil {
		return false
	}
	b, err := json.Marshal(callRecord{ID: c.id, Ended: &r})
	if err == nil {
		err = writeAtomic(path, b)
	}
	if err != nil {
		c.log.Warn("keep the ended call's log row: a daemon killed before it is written loses it", "error", err)
		os.Remove(path)
		return false
	}
	return true
}

// relog writes again the final row an ended call's record keeps (see
// above), the record removed once it is in; true when it was queued.
func (s *Server) relog(rec callRecord, path string) bool {
	if s.ctl == nil || rec.Ended.SID != rec.ID {
		os.Remove(path)
		return false
	}
	s.ctl.LogFinal(*rec.Ended, func() { os.Remove(path) })
	return true
}
