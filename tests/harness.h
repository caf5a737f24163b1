/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test harness: runs check suites with TAP output, and starts the real
 * npufarm-broker on loopback for integration tests.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>
#include <jansson.h>

struct harness_broker {
	pid_t pid;
	char dir[256]; /* mkdtemp() dir holding the ledger, logs, ready */
	char db[300];
	char log[300];
	char listen[64]; /* --listen for the next start; "" = a free port */
	char farm[64];   /* "127.0.0.1:PORT" */
	char http[64];
};

int harness_run(Suite *s);
void harness_broker_start(struct harness_broker *b, const char *const *extra);
void harness_broker_restart(struct harness_broker *b, const char *const *extra);
int harness_broker_stop(struct harness_broker *b);
void harness_broker_cleanup(struct harness_broker *b);
size_t harness_unhex(const char *hex, unsigned char *out, size_t outlen);
char *harness_http_get(const char *hostport, const char *path, int *ret_status);
char *harness_http(const char *hostport, const char *method, const char *path,
    int *ret_status);
char *harness_http_body(const char *hostport, const char *method,
    const char *path, const void *body, size_t len, int *ret_status);
void harness_sha256_hex(const void *data, size_t len, char *hex);
int harness_put_artifact(const char *hostport, const char *path, char *sha);
void harness_put_kernel(
    const char *hostport, const char *dir, const char *name, char *sha);
long harness_job_submit(const char *hostport, const char *json);
json_t *harness_job_wait(const char *hostport, long id);
char *harness_sql(const char *db, const char *sql);
void harness_wait_sql(
    const char *db, const char *sql, const char *want, int timeout_ms);
int harness_wait_closed(int fd, int timeout_ms);
struct event_base;
bool harness_spin(
    struct event_base *base, bool (*done)(void *), void *arg, int ms);
int harness_loopback(int port);
int harness_rmtree(const char *dir);
int harness_log_contains(const struct harness_broker *b, const char *needle);
pid_t harness_spawn(const char *bin, const char *const *argv, const char *log);
int harness_reap(pid_t pid, int timeout_ms);

/* Native jobs: agents of key cpu, and what their tests ask of the API. */
/* A task's "args" for the 64x64 float32 matmul kernels (tests/kernels). */
#define HARNESS_MATMUL_ARGS                                                  \
	"\"args\":[{\"dtype\":\"float32\",\"shape\":[64,64],"                \
	"\"fill\":{\"random\":1}},{\"dtype\":\"float32\",\"shape\":[64,64]," \
	"\"fill\":{\"random\":2}},{\"dtype\":\"float32\",\"shape\":[64,64]}]"
json_t *harness_job_task(json_t *job, int idx);
pid_t harness_agent_start(const struct harness_broker *b, const char *prefix,
    int i, const char *const *extra);
void harness_farm_stop(
    struct harness_broker *b, pid_t *agents, size_t n, int timeout_ms);
void harness_wait_idle(const struct harness_broker *b, int n);

/* Framed JSON and agent links spoken by hand (bench/tvmpeer.h). */
struct tvmpeer;
struct tvmpeer *harness_link_open(const char *farm, int timeout_ms);
void harness_send_text(struct tvmpeer *p, const char *json);
json_t *harness_recv_obj(struct tvmpeer *p, int timeout_ms);
json_t *harness_link_hello(
    struct tvmpeer *p, const char *hello, int timeout_ms);

/* TVM clients through the broker (bench/tvmrpc_client.h). */
struct tvmrpc_client;
struct tvmrpc_client *harness_tvm_open(
    const char *tracker, const char *key, const char *timeout, int timeout_ms);
void harness_tvm_done(struct tvmrpc_client *cl);
uint64_t harness_tvm_func(
    struct tvmrpc_client *cl, const char *name, int timeout_ms);
