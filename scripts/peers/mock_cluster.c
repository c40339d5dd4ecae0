/*
 * mock_cluster: start librdkafka's mock Kafka cluster (rdkafka_mock.h) on
 * loopback and drive it from stdin.
 *
 *   mock_cluster [-b BROKERS] [-t TOPIC[:PARTITIONS[:REPLICATION]]]...
 *
 * Prints the bootstrap list ("127.0.0.1:p1,127.0.0.1:p2,...") as the first
 * line on stdout and flushes, then reads one command per line on stdin:
 *
 *   topic NAME [PARTITIONS [REPLICATION]]   create a topic (default 4, 1)
 *   down BROKER_ID                          broker stops answering/accepting
 *   up BROKER_ID                            broker back
 *   rtt BROKER_ID MS                        add round-trip delay to a broker
 *   errors API_KEY ERR [ERR...]             next requests of API_KEY fail
 *                                           with these error codes, in order
 *   clear API_KEY                           drop pushed errors of API_KEY
 *   leader TOPIC PARTITION BROKER_ID        move a partition's leader
 *   coordinator group|transaction KEY BROKER_ID
 *   apiversion API_KEY MIN MAX              change an advertised range
 *                                           (-1 -1 removes the API)
 *   topic_error TOPIC ERR                   Metadata reports ERR for TOPIC
 *   bootstrap                               answers the bootstrap list again
 *                                           (instead of "ok")
 *   quit                                    stop (so does EOF on stdin)
 *
 * Each command is answered with one line: "ok" or "error: ...", flushed, so
 * a test can wait for the answer before it goes on. Logs go to stderr.
 *
 * Broker ids are 1..BROKERS. Works against librdkafka 2.0.2 (Debian) and
 * 2.16 (confluent-kafka wheel): only API present in both is used.
 */
#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_TOPICS 64
#define MAX_ERRS 64

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stdout, fmt, ap);
        va_end(ap);
        fputc('\n', stdout);
        fflush(stdout);
}

static int parse_long(const char *s, long *out) {
        char *end;
        if (!s)
                return -1;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || end == s || *end)
                return -1;
        *out = v;
        return 0;
}

static void reply_err(const char *what, rd_kafka_resp_err_t err) {
        if (err)
                reply("error: %s: %s", what, rd_kafka_err2str(err));
        else
                reply("ok");
}

/* Parse "NAME[:PARTITIONS[:REPLICATION]]" and create the topic. */
static rd_kafka_resp_err_t create_topic_spec(rd_kafka_mock_cluster_t *mc,
                                             char *spec) {
        int parts = 4, repl = 1;
        char *c1 = strchr(spec, ':');
        if (c1) {
                *c1++ = '\0';
                char *c2 = strchr(c1, ':');
                if (c2) {
                        *c2++ = '\0';
                        repl = atoi(c2);
                }
                parts = atoi(c1);
        }
        return rd_kafka_mock_topic_create(mc, spec, parts, repl);
}

static void usage(const char *me) {
        fprintf(stderr,
                "usage: %s [-b BROKERS] [-t TOPIC[:PARTITIONS[:REPL]]]...\n",
                me);
        exit(2);
}

int main(int argc, char **argv) {
        long brokers = 1;
        char *topics[MAX_TOPICS];
        int ntopics = 0;
        char errstr[512];

        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "-b") && i + 1 < argc) {
                        if (parse_long(argv[++i], &brokers) || brokers < 1 ||
                            brokers > 64)
                                usage(argv[0]);
                } else if (!strcmp(argv[i], "-t") && i + 1 < argc) {
                        if (ntopics == MAX_TOPICS)
                                usage(argv[0]);
                        topics[ntopics++] = argv[++i];
                } else {
                        usage(argv[0]);
                }
        }

        /* Writing to a test that went away must not kill us silently
         * mid-command; EPIPE on stdout ends the loop instead. */
        signal(SIGPIPE, SIG_IGN);

        /* The mock cluster lives inside a (producer) handle that only serves
         * as its owner and event loop; it never connects anywhere. */
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "log_level", "3", errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "conf: %s\n", errstr);
                return 1;
        }
        rd_kafka_t *rk =
            rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "rd_kafka_new: %s\n", errstr);
                return 1;
        }

        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
        if (!mc) {
                fprintf(stderr, "rd_kafka_mock_cluster_new failed\n");
                return 1;
        }
        for (int i = 0; i < ntopics; i++) {
                rd_kafka_resp_err_t err = create_topic_spec(mc, topics[i]);
                if (err) {
                        fprintf(stderr, "topic %s: %s\n", topics[i],
                                rd_kafka_err2str(err));
                        return 1;
                }
        }

        fprintf(stderr, "mock_cluster: librdkafka %s, %ld broker(s)\n",
                rd_kafka_version_str(), brokers);
        reply("%s", rd_kafka_mock_cluster_bootstraps(mc));

        char line[4096];
        while (fgets(line, sizeof(line), stdin)) {
                char *argvv[2 + MAX_ERRS];
                int n = 0;
                for (char *tok = strtok(line, " \t\r\n"); tok && n < 2 + MAX_ERRS;
                     tok = strtok(NULL, " \t\r\n"))
                        argvv[n++] = tok;
                if (n == 0 || argvv[0][0] == '#')
                        continue;
                const char *cmd = argvv[0];
                long a, b, c;

                if (!strcmp(cmd, "quit") || !strcmp(cmd, "exit")) {
                        reply("ok");
                        break;
                } else if (!strcmp(cmd, "topic") && n >= 2) {
                        long parts = 4, repl = 1;
                        if ((n >= 3 && parse_long(argvv[2], &parts)) ||
                            (n >= 4 && parse_long(argvv[3], &repl))) {
                                reply("error: bad number");
                                continue;
                        }
                        reply_err("topic", rd_kafka_mock_topic_create(
                                               mc, argvv[1], (int)parts,
                                               (int)repl));
                } else if ((!strcmp(cmd, "down") || !strcmp(cmd, "up")) &&
                           n == 2 && !parse_long(argvv[1], &a)) {
                        reply_err(cmd,
                                  !strcmp(cmd, "down")
                                      ? rd_kafka_mock_broker_set_down(mc, (int32_t)a)
                                      : rd_kafka_mock_broker_set_up(mc, (int32_t)a));
                } else if (!strcmp(cmd, "rtt") && n == 3 &&
                           !parse_long(argvv[1], &a) && !parse_long(argvv[2], &b)) {
                        reply_err("rtt", rd_kafka_mock_broker_set_rtt(
                                             mc, (int32_t)a, (int)b));
                } else if (!strcmp(cmd, "errors") && n >= 3 &&
                           !parse_long(argvv[1], &a)) {
                        rd_kafka_resp_err_t errs[MAX_ERRS];
                        int k, bad = 0;
                        for (k = 2; k < n; k++) {
                                if (parse_long(argvv[k], &b)) {
                                        bad = 1;
                                        break;
                                }
                                errs[k - 2] = (rd_kafka_resp_err_t)b;
                        }
                        if (bad) {
                                reply("error: bad error code");
                                continue;
                        }
                        rd_kafka_mock_push_request_errors_array(
                            mc, (int16_t)a, (size_t)(n - 2), errs);
                        reply("ok");
                } else if (!strcmp(cmd, "clear") && n == 2 &&
                           !parse_long(argvv[1], &a)) {
                        rd_kafka_mock_clear_request_errors(mc, (int16_t)a);
                        reply("ok");
                } else if (!strcmp(cmd, "leader") && n == 4 &&
                           !parse_long(argvv[2], &a) && !parse_long(argvv[3], &b)) {
                        reply_err("leader", rd_kafka_mock_partition_set_leader(
                                                mc, argvv[1], (int32_t)a,
                                                (int32_t)b));
                } else if (!strcmp(cmd, "coordinator") && n == 4 &&
                           !parse_long(argvv[3], &a)) {
                        reply_err("coordinator",
                                  rd_kafka_mock_coordinator_set(
                                      mc, argvv[1], argvv[2], (int32_t)a));
                } else if (!strcmp(cmd, "apiversion") && n == 4 &&
                           !parse_long(argvv[1], &a) && !parse_long(argvv[2], &b) &&
                           !parse_long(argvv[3], &c)) {
                        reply_err("apiversion",
                                  rd_kafka_mock_set_apiversion(
                                      mc, (int16_t)a, (int16_t)b, (int16_t)c));
                } else if (!strcmp(cmd, "topic_error") && n == 3 &&
                           !parse_long(argvv[2], &a)) {
                        rd_kafka_mock_topic_set_error(mc, argvv[1],
                                                      (rd_kafka_resp_err_t)a);
                        reply("ok");
                } else if (!strcmp(cmd, "bootstrap")) {
                        reply("%s", rd_kafka_mock_cluster_bootstraps(mc));
                } else {
                        reply("error: unknown or malformed command: %s", cmd);
                }
                if (ferror(stdout))
                        break;
        }

        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 0;
}
