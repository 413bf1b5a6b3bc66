/*
 * service/server.h - the control socket RUN/vssd.sock: connections, roles,
 * limits, and dispatch to the operations of the other modules (server.c;
 * the wire is doc/protocol.md).
 */
#ifndef VSS_SERVICE_SERVER_H
#define VSS_SERVICE_SERVER_H

#include <vss/error.h>

struct conn;
struct vss_service;
struct vss_service_config;

/* Listens on RUN/vssd.sock with @cfg's limits. */
int svc_server_start(struct vss_service *svc, const struct vss_service_config *cfg,
		     struct vss_error *err);
void svc_server_stop(struct vss_service *svc);
/* writer.register succeeded: after its reply, hand the connection to @writer. */
void svc_conn_hand_off(struct conn *c, void *writer);
/* @c's socket, for a request that speaks more than one reply on it (peer.set:
 * the steps of a set across hosts, peer.h), from its own handler only. */
int svc_conn_fd(const struct conn *c);

#endif
