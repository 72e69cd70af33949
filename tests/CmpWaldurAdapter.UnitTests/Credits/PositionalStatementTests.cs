using CmpWaldurAdapter.Credits;
using Npgsql;
using NpgsqlTypes;

namespace CmpWaldurAdapter.UnitTests.Credits;

public sealed class PositionalStatementTests
{
    private const string Sql = """
        SELECT @b, @a::bigint, e.email FROM t e
        WHERE e.x = @b AND e.tags @> ARRAY['x@y'] AND @a IS NOT NULL AND e.y = @c_2
        """;

    [Fact]
    public void Named_placeholders_become_positions_in_order_of_first_use_and_a_reused_name_keeps_its_position()
    {
        var statement = new PositionalStatement(Sql);

        Assert.Equal("""
            SELECT $1, $2::bigint, e.email FROM t e
            WHERE e.x = $1 AND e.tags @> ARRAY['x@y'] AND $2 IS NOT NULL AND e.y = $3
            """, statement.Text);
    }

    [Fact]
    public void Parameters_bound_by_name_are_sent_unnamed_in_their_positions()
    {
        var statement = new PositionalStatement("SELECT @b, @a, @b, @c");

        var command = statement.CreateBatchCommand(parameters =>
        {
            parameters.Add(new NpgsqlParameter<int>("a", 1));
            parameters.Add(new NpgsqlParameter("c", NpgsqlDbType.Text) { Value = DBNull.Value });
            parameters.Add(new NpgsqlParameter<int>("b", 2));
            parameters.Add(new NpgsqlParameter<int>("unused", 3));
        });

        Assert.Equal("SELECT $1, $2, $1, $3", command.CommandText);
        Assert.Equal([2, 1, DBNull.Value], command.Parameters.Select(p => p.Value));
        Assert.All(command.Parameters, p => Assert.Equal(string.Empty, p.ParameterName));
    }

    [Fact]
    public void A_placeholder_left_unbound_is_a_clear_error()
    {
        var statement = new PositionalStatement("SELECT @a, @missing");

        var error = Assert.Throws<InvalidOperationException>(() => statement.CreateBatchCommand(parameters => parameters.Add(new NpgsqlParameter<int>("a", 1))));

        Assert.Contains("@missing", error.Message, StringComparison.Ordinal);
    }
}
