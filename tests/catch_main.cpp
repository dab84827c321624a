// The main() of every Catch2 test binary (target saga_test_main), in place of Catch2WithMain's:
// the same, except that a run fails when it matches no test case (Catch2's `-w NoTests`: a ctest
// entry that names no test, as catch_discover_tests makes of a name with ';') and when a test
// case or leaf section asserts nothing (`-w NoAssertions`), however the binary is run. Catch2
// 2.13 accepts `-w` only once on a command line, so the two cannot both be passed there.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

int main(int argc, char* argv[]) {
    Catch::Session session;
    session.configData().warnings = static_cast<Catch::WarnAbout::What>(
        Catch::WarnAbout::NoAssertions | Catch::WarnAbout::NoTests);
    if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
    return session.run();
}
