/* TURN policy: being written. */
#include "config.h"

#include "turn/turn-int.h"
