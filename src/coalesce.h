/*
 * coalesce.h: gathering commits that arrive close together into one chunk.
 */
#ifndef EDU_OUTBOX_COALESCE_H
#define EDU_OUTBOX_COALESCE_H

/* edu_outbox.coalesce_window, in ms (default 2); 0 sends as soon as a commit wakes the relay. */
extern int	outbox_coalesce_window_ms;

extern void outbox_define_coalesce_settings(void);
/* After a commit woke the relay: waits the window (shutdown cuts it short). */
extern void outbox_coalesce_wakeups(void);

#endif
