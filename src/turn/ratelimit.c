/* TURN ratelimit: being written. */
#include "config.h"

#include "turn/turn-int.h"
