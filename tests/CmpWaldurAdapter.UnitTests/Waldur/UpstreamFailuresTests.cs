using CmpWaldurAdapter.Waldur.Api;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace CmpWaldurAdapter.UnitTests.Waldur;

public sealed class UpstreamFailuresTests
{
    [Theory]
    [InlineData("40001", true)] // serialization failure: run it again
    [InlineData("57P01", true)] // the server was shut down (a restart or failover)
    [InlineData("53300", true)] // too many connections
    [InlineData("23505", false)] // a unique violation is the request's own
    [InlineData("42P01", false)] // a missing table will not appear by waiting
    public void Database_errors_are_transient_as_the_driver_says(string sqlState, bool transient)
    {
        var error = new PostgresException("message", "ERROR", "ERROR", sqlState);

        Assert.Equal(transient, UpstreamFailures.IsTransient(error));
        // EF Core wraps what SaveChanges meets.
        Assert.Equal(transient, UpstreamFailures.IsTransient(new DbUpdateException("save failed", error)));
    }
}
