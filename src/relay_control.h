/*
 * relay_control.h: what SQL can tell the relay (relay_control.c): pause it
 * (a flag in relay_state) and wake it at commit.
 */
#ifndef EDU_OUTBOX_RELAY_CONTROL_H
#define EDU_OUTBOX_RELAY_CONTROL_H

/* Whether outbox_pause() is in effect. Runs with SPI connected. */
extern bool outbox_relay_paused(void);

#endif
