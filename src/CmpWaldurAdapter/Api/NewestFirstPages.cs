using System.Linq.Expressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Query;

namespace CmpWaldurAdapter.Api;

/// <summary>
/// Keyset paging of a newest-first list, shared by every paged list: rows ordered by (time, id) descending, so
/// rows of the same instant keep one order and a walk sees each once; a page starts beyond (or, for
/// <see cref="PageCursor.Including"/>, at) the cursor's row, which is looked up among the given rows only.
/// </summary>
public static class NewestFirstPages
{
    /// <summary>The page, or null when the cursor names no row among <paramref name="rows"/>.</summary>
    public static async Task<ListPage<T>?> ReadAsync<T>(IQueryable<T> rows, Expression<Func<T, DateTimeOffset?>> time, Expression<Func<T, Guid>> id,
        int limit, PageCursor? from, CancellationToken cancellationToken)
    {
        // One parameter for both selectors, so they can be combined in one predicate.
        var idOfRow = Expression.Lambda<Func<T, Guid>>(ReplacingExpressionVisitor.Replace(id.Parameters[0], time.Parameters[0], id.Body), time.Parameters);
        if (from is { } cursor)
        {
            var bound = new Bound { Id = cursor.Id };
            bound.At = await rows.Where(IsCursor<T>(idOfRow.Body, bound, time.Parameters[0])).Select(time).SingleOrDefaultAsync(cancellationToken);
            if (bound.At is null)
            {
                return null;
            }

            rows = rows.Where(Beyond(time, idOfRow.Body, bound, cursor));
        }

        var ordered = from is { Newer: true } ? rows.OrderBy(time).ThenBy(idOfRow) : rows.OrderByDescending(time).ThenByDescending(idOfRow);
        var found = await ordered.Take(limit + 1).ToListAsync(cancellationToken);
        var page = found.Take(limit).ToList();
        if (from is { Newer: true })
        {
            page.Reverse();
        }

        return new ListPage<T>(page, found.Count > limit);
    }

    /// <summary>Newer: (time, id) above the cursor's; older: below it, or at it too when including it.</summary>
    private static Expression<Func<T, bool>> Beyond<T>(Expression<Func<T, DateTimeOffset?>> time, Expression id, Bound bound, PageCursor cursor)
    {
        var (strict, tie) = cursor switch
        {
            { Newer: true } => (ExpressionType.GreaterThan, ExpressionType.GreaterThan),
            { Including: true } => (ExpressionType.LessThan, ExpressionType.LessThanOrEqual),
            _ => (ExpressionType.LessThan, ExpressionType.LessThan),
        };
        var at = Expression.Property(Expression.Constant(bound), nameof(Bound.At));
        var compareIds = Expression.Call(id, typeof(Guid).GetMethod(nameof(Guid.CompareTo), [typeof(Guid)])!, Expression.Property(Expression.Constant(bound), nameof(Bound.Id)));
        var body = Expression.OrElse(
            Expression.MakeBinary(strict, time.Body, at),
            Expression.AndAlso(Expression.Equal(time.Body, at), Expression.MakeBinary(tie, compareIds, Expression.Constant(0))));
        return Expression.Lambda<Func<T, bool>>(body, time.Parameters);
    }

    private static Expression<Func<T, bool>> IsCursor<T>(Expression id, Bound bound, ParameterExpression row) =>
        Expression.Lambda<Func<T, bool>>(Expression.Equal(id, Expression.Property(Expression.Constant(bound), nameof(Bound.Id))), row);

    /// <summary>The cursor's values, read through an object so that EF Core sends them as parameters, not literals in a new query shape.</summary>
    private sealed class Bound
    {
        public Guid Id { get; init; }

        public DateTimeOffset? At { get; set; }
    }
}
