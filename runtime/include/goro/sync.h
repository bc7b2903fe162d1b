// goro/sync.h: RWMutex, Once and Cond, after Go's sync package. Included by
// goro/goro.h.
#pragma once

#include "goro/goro.h"
