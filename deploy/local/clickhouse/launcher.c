/*
 * Runs the clickhouse-local program inside libchdb.so (from the npm package
 * @chdb/lib-linux-x64-gnu) as a process of its own, so that it can serve HTTP on loopback
 * and be stopped by PID. Usage: chdb-launcher /path/to/libchdb.so [clickhouse-local args...]
 * A C launcher rather than an FFI call from Node: ClickHouse needs a large native stack and
 * owns its threads and signal handlers, which a Node process should not share.
 */
#include <dlfcn.h>
#include <stdio.h>

typedef void *(*query_cmdline_fn)(int argc, char **argv);

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s /path/to/libchdb.so [clickhouse-local args...]\n", argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "chdb-launcher: cannot load %s: %s\n", argv[1], dlerror());
        return 1;
    }
    query_cmdline_fn run = (query_cmdline_fn)dlsym(lib, "chdb_query_cmdline");
    if (!run) {
        fprintf(stderr, "chdb-launcher: %s has no chdb_query_cmdline: %s\n", argv[1], dlerror());
        return 1;
    }
    /* argv[1] stands in for the program name clickhouse-local expects in argv[0]. */
    run(argc - 1, argv + 1);
    return 0;
}
