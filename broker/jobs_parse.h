/* SPDX-License-Identifier: Apache-2.0 */
/*
 * POST /v1/jobs off the loop: a thread parses and checks job bodies (a
 * 10,000-task job is seconds of JSON work) while the loop goes on; the
 * loop then records the job and answers.
 */
#pragma once

struct evhttp_request;
struct jobs_parse;
struct npufarm_err;
struct http_env;

int jobs_parse_new(const struct http_env *env, struct jobs_parse **ret,
    struct npufarm_err *err);
struct jobs_parse *jobs_parse_free(struct jobs_parse *p);
void jobs_parse_submit(struct jobs_parse *p, struct evhttp_request *req);
