using System.Text.RegularExpressions;
using Npgsql;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// A statement written with <c>@name</c> placeholders and sent with positional <c>$n</c> ones. Npgsql parses and
/// rewrites named placeholders on every execution (measurable on the chat hot path); a command whose parameters
/// are all unnamed is sent as it is.
/// </summary>
internal sealed partial class PositionalStatement
{
    private readonly string[] _names;

    public PositionalStatement(string sql)
    {
        var names = new List<string>();
        Text = Placeholder().Replace(sql, match =>
        {
            var name = match.Groups[1].Value;
            var index = names.IndexOf(name);
            if (index < 0)
            {
                names.Add(name);
                index = names.Count - 1;
            }

            return "$" + (index + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
        });
        _names = [.. names];
    }

    /// <summary>The SQL with <c>$n</c> placeholders.</summary>
    public string Text { get; }

    /// <summary>
    /// Runs the statement on its own (one implicit transaction) and reads its single row. <paramref name="bind"/>
    /// adds parameters by name, which are then put in position, unnamed.
    /// </summary>
    public async Task<T> QueryRowAsync<T>(NpgsqlDataSource dataSource, Action<NpgsqlParameterCollection> bind, Func<NpgsqlDataReader, T> read)
    {
        await using var command = dataSource.CreateCommand(Text);
        Bind(command.Parameters, bind);
        await using var row = await command.ExecuteReaderAsync(System.Data.CommandBehavior.SingleRow, CancellationToken.None);
        await row.ReadAsync(CancellationToken.None);
        return read(row);
    }

    /// <summary>The same, as one command of a batch.</summary>
    public NpgsqlBatchCommand CreateBatchCommand(Action<NpgsqlParameterCollection> bind)
    {
        var command = new NpgsqlBatchCommand(Text);
        Bind(command.Parameters, bind);
        return command;
    }

    private void Bind(NpgsqlParameterCollection parameters, Action<NpgsqlParameterCollection> bind)
    {
        bind(parameters);
        var named = parameters.ToDictionary(p => p.ParameterName, StringComparer.Ordinal);
        parameters.Clear();
        foreach (var name in _names)
        {
            var parameter = named.TryGetValue(name, out var bound) ? bound : throw new InvalidOperationException($"The statement's parameter @{name} was not bound.");
            parameter.ParameterName = string.Empty;
            parameters.Add(parameter);
        }
    }

    // @name, but not inside an identifier or an operator such as @@ or @>.
    [GeneratedRegex(@"(?<![@\w])@([A-Za-z_][A-Za-z0-9_]*)")]
    private static partial Regex Placeholder();
}
