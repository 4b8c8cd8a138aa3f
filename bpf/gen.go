package bpf

// The generated steer_bpfel.go and steer_bpfel.o are committed so that
// `go build` needs no clang; `make generate` runs this (Debian: clang-14,
// llvm-14 and libbpf-dev).
//go:generate go tool bpf2go -cc clang-14 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel steer src/steer.c
//go:generate go tool bpf2go -cc clang-14 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel fastpath src/fastpath.c
