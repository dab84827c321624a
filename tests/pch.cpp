// The translation unit that builds the precompiled header of the tests (tests/CMakeLists.txt).
