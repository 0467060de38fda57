// The V8 flags the operator's Node process runs with, wherever it runs: the image's ENTRYPOINT, `make run`,
// `make bench` and the tests that start the compiled operator. One list, so nothing measures or tests a process
// configured differently from the one that ships (a unit test holds the Dockerfile and the Makefile to it).

/**
 * A young generation of at most 4 MiB per semi-space. Left to itself, Node 24 grows each semi-space with the heap
 * limit, to 64 MiB on a 24 GiB machine (a new space of 128 MiB), and keeps it once a burst has grown it: after the
 * initial list of 50,000 pods the operator sat at 287–305 MiB RSS with under 50 MiB of heap in use, against
 * 171–178 MiB with this flag (bench/README.md, scale suite). Scavenges become more frequent but shorter:
 * per-admission CPU did not move, and the injector's p99 at 1,000 small pods/s in a steady stream fell from
 * 2.8–3.3 to 1.9–2.3 ms.
 */
export const OPERATOR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
