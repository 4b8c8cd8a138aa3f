//go:build !linux

// Command sbc-bench measures a media relay under load. It uses Linux
// interfaces (epoll, recvmmsg, /proc) and runs on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "sbc-bench: Linux only (epoll, recvmmsg, /proc)")
	os.Exit(1)
}
