// telemetry::journal_telemetry: placeholder, filled below.
#include <catch2/catch.hpp>
