//go:build !linux

package bpf

import "errors"

func (f *FastPath) attachClsact(int) error { return errors.New("fast path: TC needs Linux") }
func (f *FastPath) detachClsact() error    { return nil }
func dropClsact(int) error                 { return nil }

// DropClsactExcept needs Linux: there is nothing to drop elsewhere.
func DropClsactExcept([]int) (int, error) { return 0, nil }
