// ThreadSanitizer and libzmq: the distro's libzmq is not built with TSan, and it hands message buffers between
// its I/O thread and ours through lock-free pipes whose atomics TSan cannot see. Every such hand-off is then
// reported as a race between libzmq code and the code that reads the message. These suppressions silence reports
// that have a libzmq frame in one of the two stacks; races between picospec's own threads (mutexes, condition
// variables, queues) have no libzmq frame and are still reported. With CURVE, libzmq's I/O thread decrypts into the
// message buffer inside libsodium (equally uninstrumented), so libsodium frames are treated the same way.
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() {
  return "race:libzmq.so\n"
         "race:libsodium.so\n"
         "called_from_lib:libzmq.so\n";
}
#endif
