#pragma once
// Implementation details; include the public header instead.
