// The V8 flags the operator's Node process runs with, wherever it runs: the image's ENTRYPOINT, `make run`,
// `make bench` and the tests that start the compiled operator. One list, so nothing measures or tests a process
// configured differently from the one that ships (a unit test holds the Dockerfile and the Makefile to it).

/**
 * `--max-semi-space-size=4`: a young generation of at most 4 MiB per semi-space. Left to itself, Node 24 grows each
 * semi-space with the heap limit, to 64 MiB on a 24 GiB machine (a new space of 128 MiB), and keeps it once a burst
 * has grown it: after the initial list of 50,000 pods the operator sat at 287–305 MiB RSS with under 50 MiB of heap in
 * use, against 171–178 MiB with this flag (bench/README.md, scale suite). Scavenges become more frequent but
 * shorter: per-admission CPU did not move, and the injector's p99 at 1,000 small pods/s in a steady stream fell from
 * 2.8–3.3 to 1.9–2.3 ms.
 *
 * `--v8-pool-size=1`: one V8 background thread (Node's default is four, whatever the machine). V8 hands concurrent
 * marking and optimising compilation to these threads; on a small node four of them at once take the cores from the
 * main thread, which serves every admission, and the requests that arrive meanwhile wait. On two vCPUs, 1,000
 * distinct small pods/s through the injector and the bench's load generator (8 s runs after a 3 s warm-up, one
 * setting against the other, alternating), p99 was lower with one thread in 14 of 14 pairs (median 13.6 against
 * 40.3 ms), with the same CPU per request and the same closed-loop throughput (three pairs); two threads were no
 * better than four. A heap the size of the operator's (under 200 MiB) does not need more of them.
 */
export const OPERATOR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--v8-pool-size=1'];
