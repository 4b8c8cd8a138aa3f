package bare

// The generated bare_bpfel.go and bare_bpfel.o are committed so that
// `go build` needs no clang; `make generate` runs this.
//go:generate go tool bpf2go -cc clang-14 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel bare src/bare.c
